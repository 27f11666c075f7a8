"""Write a Triton model repository for one exported style: one model per stage, plus ensembles.

Layout (``<style>`` = bundle.style, ``<prompt>`` = each text mapper)::

    preprocess/                  image_bytes [, largest, paste_back] -> one row per face:  (Python)
                                 aligned [3,256,256], transform [3,3], face_image_bytes, face_paste_back
    encoder_<style>/             aligned -> w_plus                                       (ONNX)
    mapper_<style>_<prompt>/     w_plus -> edited w_plus                                 (ONNX)
    synthesis_<style>/           w_plus -> image [3,S,S]                                 (ONNX)
    postprocess/                 image (+ image_bytes, transform, paste_back) -> PNG, composite  (Python)
    seeds_<style>/               seed, mix -> z, z_mix                                   (Python)
    mapping_<style>/             z -> w                                                  (ONNX)
    style_mix_<style>/           w, w_mix, mix -> w_plus                                 (Python)
    cartoonize_<style>[_<prompt>]/  ensemble: image_bytes [, paste_back, largest] -> output_bytes, image, composite
                                 (one row per face, largest first: every face of a photo is one encoder batch)
    generate_<style>/            ensemble: seed, mix -> output_bytes, image

Two flavours share names and tensor contracts: ``python`` (every model on the Python backend, the
ONNX stages run by ONNX Runtime, or by the engine the export built: an AOTInductor package or
OpenVINO IR; works with the tritonserver bundled in nvidia-pytriton) and ``native`` (ONNX stages on
``onnxruntime_onnx``, ``tensorrt_plan`` or the ``openvino`` backend, for NGC containers). The
Python models are one-line ``model.py`` files importing :mod:`cptr.serving.models`, so the code
has one source and follows ``pip install``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from cptr import contracts as C
from cptr.contracts import ExportBundle, StageArtifact, TensorSpec, pbtxt_dims, specs_to_pbtxt
from cptr.engines.openvino import EngineConfig, ir_files
from cptr.io import atomic_write_text

BACKENDS = ("python", "native")
QUEUE_DELAY_US = 2000  # dynamic batching: wait at most 2 ms to fill a batch


def _params(params: dict[str, str]) -> str:
    return "".join(f'parameters {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}\n' for k, v in params.items())


def _preferred(batch_max: int) -> list[int]:
    sizes = sorted({b for b in (batch_max // 2, batch_max) if b >= 2})
    return sizes or [1]


def model_config(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    batch_max: int,
    *,
    backend: str = "python",
    platform: str | None = None,
    kind: str = "KIND_CPU",
    params: dict[str, str] | None = None,
    optional: Iterable[str] = (),
    default_file: str | None = None,
) -> str:
    """config.pbtxt of one model with dynamic batching and one instance."""
    head = f'name: "{name}"\n' + (f'platform: "{platform}"\n' if platform else f'backend: "{backend}"\n')
    if default_file:
        head += f'default_model_filename: "{default_file}"\n'
    head += f"max_batch_size: {batch_max}\n"
    body = specs_to_pbtxt("input", inputs, optional) + specs_to_pbtxt("output", outputs)
    batching = (
        "dynamic_batching {\n"
        f"  preferred_batch_size: {pbtxt_dims(_preferred(batch_max))}\n"
        f"  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n"
        "}\n"
    )
    instances = f"instance_group [\n  {{\n    count: 1\n    kind: {kind}\n  }}\n]\n"
    return head + body + batching + instances + _params(params or {})


@dataclasses.dataclass
class Step:
    """One ensemble step: model, its input -> ensemble tensor, its output -> ensemble tensor."""

    model: str
    inputs: dict[str, str]
    outputs: dict[str, str]


def ensemble_config(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    batch_max: int,
    steps: Sequence[Step],
    optional: Iterable[str] = (),
) -> str:
    """config.pbtxt of an ensemble (no batching options of its own: its steps batch).

    An ``optional`` input may be left out of a request; every step it feeds must accept that.
    """
    parts = []
    for s in steps:
        maps = "".join(f'      input_map {{ key: "{k}" value: "{v}" }}\n' for k, v in s.inputs.items())
        maps += "".join(f'      output_map {{ key: "{k}" value: "{v}" }}\n' for k, v in s.outputs.items())
        parts.append(f'    {{\n      model_name: "{s.model}"\n      model_version: -1\n{maps}    }}')
    return (
        f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {batch_max}\n'
        + specs_to_pbtxt("input", inputs, optional)
        + specs_to_pbtxt("output", outputs)
        + "ensemble_scheduling {\n  step [\n"
        + ",\n".join(parts)
        + "\n  ]\n}\n"
    )


def _python_model(root: Path, name: str, module: str, config: str) -> None:
    version = root / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        version / "model.py",
        f'"""Triton Python-backend model {name}: the code lives in the installed cptr package."""\n\n'
        f"from cptr.serving.models.{module} import TritonPythonModel  # noqa: F401\n",
    )
    atomic_write_text(root / name / "config.pbtxt", config)


def _place_file(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (a copy across file systems); the caller removes its staging files.

    Linking instead of moving leaves ``src`` where the exporter expects it (it records engine
    files and their sha256 after this writer ran), and costs no copy.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"exported model file {src} does not exist; run cptr-export again")
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _tensor_stage(root: Path, name: str, art: StageArtifact, batch_max: int, backend: str) -> dict[str, str]:
    """An ONNX (or TensorRT plan, or OpenVINO IR) stage in either flavour; returns the files placed, relative to ``root``."""
    placed = {"file": f"{name}/1/model.onnx"}
    _place_file(art.onnx_path, root / placed["file"])
    if art.extra.get("openvino_path"):
        return _openvino_stage(root, name, art, batch_max, backend, placed)
    engine = art.extra.get("engine_path") if backend == "native" else None
    if engine:  # the ONNX file stays beside the plan: the plan's source, recorded in manifest.json
        placed["engine_file"] = f"{name}/1/model.plan"
        _place_file(Path(engine), root / placed["engine_file"])
        cfg = model_config(name, art.inputs, art.outputs, batch_max, platform="tensorrt_plan", kind="KIND_GPU", default_file="model.plan")
        atomic_write_text(root / name / "config.pbtxt", cfg)
    elif backend == "native":
        cfg = model_config(
            name, art.inputs, art.outputs, batch_max, platform="onnxruntime_onnx", kind="KIND_GPU", default_file="model.onnx"
        )
        atomic_write_text(root / name / "config.pbtxt", cfg)
    else:
        cfg = model_config(name, art.inputs, art.outputs, batch_max, params={"onnx_file": "model.onnx"})
        _python_model(root, name, "onnx_stage", cfg)
    torch_engine = art.extra.get("torch_engine_path")
    if torch_engine:  # AOTInductor package: the python flavour's onnx_stage model runs it when it loads here
        placed["engine_file"] = f"{name}/1/model.pt2"
        _place_file(Path(torch_engine), root / placed["engine_file"])
    return placed


def _openvino_stage(root: Path, name: str, art: StageArtifact, batch_max: int, backend: str, placed: dict[str, str]) -> dict[str, str]:
    """OpenVINO IR (``model.xml`` + ``model.bin``) beside the ONNX file it was converted from.

    Native flavour: Triton's ``openvino`` backend on the CPU, tuned by the export's
    :class:`~cptr.engines.openvino.EngineConfig` (``HINT_BF16`` for bf16). Python flavour: the
    ``onnx_stage`` model with ``engine: openvino``, which compiles the IR with the same settings.
    """

    meta = art.extra.get("openvino") or {}
    config = EngineConfig.from_dict(meta.get("config") or {})
    xml, weights = ir_files(art.extra["openvino_path"])
    placed["engine_file"], placed["engine_weights_file"] = f"{name}/1/model.xml", f"{name}/1/model.bin"
    _place_file(weights, root / placed["engine_weights_file"])
    _place_file(xml, root / placed["engine_file"])
    if backend == "native":
        cfg = model_config(
            name,
            art.inputs,
            art.outputs,
            batch_max,
            backend="openvino",
            kind="KIND_CPU",
            default_file="model.xml",
            params=config.triton_parameters(),
        )
        if config.precision == "fp32":
            cfg = (
                "# fp32 engine. Triton's openvino backend has no parameter for f32 inference: on a CPU with bf16\n"
                "# (AVX-512 BF16, AMX) OpenVINO runs this model in bf16, its default there. Serve the python flavour for fp32.\n"
            ) + cfg
        atomic_write_text(root / name / "config.pbtxt", cfg)
    else:
        params = {"onnx_file": "model.onnx", "engine": "openvino", "openvino_file": "model.xml", **config.python_parameters()}
        _python_model(root, name, "onnx_stage", model_config(name, art.inputs, art.outputs, batch_max, params=params))
    return placed


def _one(specs: Sequence[TensorSpec], what: str) -> TensorSpec:
    if len(specs) != 1:
        raise ValueError(f"{what} must have exactly one tensor, got {[s.name for s in specs]}")
    return specs[0]


def write_repository(root: Path, bundle: ExportBundle, backend: str = "python") -> dict[str, dict[str, str]]:
    """Write every model and ensemble of ``bundle`` into ``root`` (see the module docstring).

    ``root`` is the exporter's temporary directory (swapped in atomically afterwards); each staged
    ONNX file (and TensorRT plan, native flavour, or AOTInductor package) is hard-linked to
    ``<root>/<model>/1/model.onnx`` (``model.plan``, ``model.pt2``, ``model.xml`` + ``model.bin``); the caller deletes its staging
    directory. The combined generator graph, when the bundle has one, goes to
    ``<root>/generator_<style>.onnx``: Triton treats every sub-directory as a model, and it is not one.

    Returns ``{model name: {"file": ..., ["engine_file": ..., "engine_weights_file": ...]}}``, paths relative to ``root``, for
    every file placed. This module is the one place that decides where a file goes.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    style, b = C.check_name(bundle.style), int(bundle.batch_max)
    if not 1 <= b <= C.MAX_SEEDS_PER_REQUEST:
        raise ValueError(f"batch_max must be in [1, {C.MAX_SEEDS_PER_REQUEST}], got {b}")

    # Random generation: seeds -> mapping (x2) -> style mix -> synthesis -> postprocess.
    z_in = _one(bundle.mapping.inputs, "mapping input")
    w_out = _one(bundle.mapping.outputs, "mapping output")
    wp_in = _one(bundle.synthesis.inputs, "synthesis input")
    img = _one(bundle.synthesis.outputs, "synthesis output")
    z_mix, w_mix = dataclasses.replace(z_in, name=C.Z_MIX), dataclasses.replace(w_out, name=C.W_MIX)
    placed = {
        name: _tensor_stage(root, name, art, b, backend)
        for name, art in ((C.model_name(C.MAPPING, style), bundle.mapping), (C.model_name(C.SYNTHESIS, style), bundle.synthesis))
    }
    if bundle.generator is not None:
        name = C.model_name(C.GENERATOR, style)
        placed[name] = {"file": f"{name}.onnx"}
        _place_file(bundle.generator.onnx_path, root / placed[name]["file"])
    seeds_params = {"style_dim": str(bundle.style_dim), "z_output": z_in.name, "z_mix_output": C.Z_MIX}
    _python_model(
        root,
        C.model_name(C.SEEDS, style),
        "seeds",
        model_config(C.model_name(C.SEEDS, style), [C.SEED, C.MIX], [z_in, z_mix], b, params=seeds_params),
    )
    mix_params = {"n_latent": str(bundle.n_latent), "w_input": w_out.name, "w_mix_input": C.W_MIX, "w_plus_output": wp_in.name}
    _python_model(
        root,
        C.model_name(C.STYLE_MIX, style),
        "style_mix",
        model_config(C.model_name(C.STYLE_MIX, style), [w_out, w_mix, C.MIX], [wp_in], b, params=mix_params),
    )

    post_image = C.image(-1, name=C.image(1).name)  # any resolution: shared by every style
    _python_model(
        root,
        C.POSTPROCESS,
        "postprocess",
        model_config(
            C.POSTPROCESS,
            [post_image, C.IMAGE_BYTES, C.TRANSFORM, C.PASTE_BACK],
            [C.OUTPUT_BYTES, post_image, C.COMPOSITE],
            b,
            params={"image_input": post_image.name},
            optional=[C.IMAGE_BYTES.name, C.TRANSFORM.name, C.PASTE_BACK.name],
        ),
    )
    # The raw image goes out through postprocess (a pass-through): Triton 2.51 deadlocks when a
    # client requests a subset of the outputs and one ensemble output also feeds another step.
    ens_out = [C.OUTPUT_BYTES, img]
    post_out = {C.OUTPUT_BYTES.name: C.OUTPUT_BYTES.name, post_image.name: img.name}
    synth_step = Step(C.model_name(C.SYNTHESIS, style), {wp_in.name: wp_in.name}, {img.name: C.SYNTHESIZED})
    gen_steps = [
        Step(C.model_name(C.SEEDS, style), {C.SEED.name: C.SEED.name, C.MIX.name: C.MIX.name}, {z_in.name: z_in.name, C.Z_MIX: C.Z_MIX}),
        Step(C.model_name(C.MAPPING, style), {z_in.name: z_in.name}, {w_out.name: w_out.name}),
        Step(C.model_name(C.MAPPING, style), {z_in.name: C.Z_MIX}, {w_out.name: C.W_MIX}),
        Step(
            C.model_name(C.STYLE_MIX, style), {w_out.name: w_out.name, C.W_MIX: C.W_MIX, C.MIX.name: C.MIX.name}, {wp_in.name: wp_in.name}
        ),
        synth_step,
        Step(C.POSTPROCESS, {post_image.name: C.SYNTHESIZED}, post_out),
    ]
    _ensemble(root, C.generate_model(style), [C.SEED, C.MIX], ens_out, b, gen_steps)

    # Photo -> cartoon: preprocess -> encoder -> [mapper] -> synthesis -> postprocess.
    ensembles = [C.generate_model(style)]
    if bundle.encoder is not None:
        enc_in = _one(bundle.encoder.inputs, "encoder input")
        enc_out = _one(bundle.encoder.outputs, "encoder output")
        # An encoder with another input size gets its own preprocess_<size> (same code, crop size parameter).
        size = int(enc_in.dims[-1])
        if len(enc_in.dims) != 3 or enc_in.dims[0] != 3 or enc_in.dims[1] != size or size < 8:
            raise ValueError(f"encoder input must be [3, S, S], got {list(enc_in.dims)}")
        pre = C.PREPROCESS if size == C.ALIGNED_SIZE else f"{C.PREPROCESS}_{size}"
        pre_out = dataclasses.replace(C.ALIGNED, dims=(3, size, size))
        face_photo = dataclasses.replace(C.IMAGE_BYTES, name=C.FACE_IMAGE_BYTES)
        face_paste = dataclasses.replace(C.PASTE_BACK, name=C.FACE_PASTE_BACK)
        _python_model(
            root,
            pre,
            "preprocess",
            model_config(
                pre,
                [C.IMAGE_BYTES, C.LARGEST, C.PASTE_BACK],
                [pre_out, C.TRANSFORM, face_photo, face_paste],
                b,
                params={"aligned_size": str(size), "max_faces": str(min(C.MAX_FACES_PER_PHOTO, b))},
                optional=[C.LARGEST.name, C.PASTE_BACK.name],
            ),
        )
        placed[C.model_name(C.ENCODER, style)] = _tensor_stage(root, C.model_name(C.ENCODER, style), bundle.encoder, b, backend)
        # From preprocess on, the rows are faces (C.FACE_ROWS): the photo and its paste_back flag come per face.
        front = [
            Step(
                pre,
                {C.IMAGE_BYTES.name: C.IMAGE_BYTES.name, C.LARGEST.name: C.LARGEST.name, C.PASTE_BACK.name: C.PASTE_BACK.name},
                {
                    C.ALIGNED.name: C.ALIGNED.name,
                    C.TRANSFORM.name: C.TRANSFORM.name,
                    C.FACE_IMAGE_BYTES: C.FACE_IMAGE_BYTES,
                    C.FACE_PASTE_BACK: C.FACE_PASTE_BACK,
                },
            ),
            Step(C.model_name(C.ENCODER, style), {enc_in.name: C.ALIGNED.name}, {enc_out.name: C.W_PLUS_PHOTO}),
        ]
        post = Step(
            C.POSTPROCESS,
            {
                post_image.name: C.SYNTHESIZED,
                C.IMAGE_BYTES.name: C.FACE_IMAGE_BYTES,
                C.TRANSFORM.name: C.TRANSFORM.name,
                C.PASTE_BACK.name: C.FACE_PASTE_BACK,
            },
            {**post_out, C.COMPOSITE.name: C.COMPOSITE.name},
        )
        plain_synth = Step(C.model_name(C.SYNTHESIS, style), {wp_in.name: C.W_PLUS_PHOTO}, {img.name: C.SYNTHESIZED})
        # paste_back and largest are optional: preprocess reads a missing one as 0 (no composite; every face)
        photo_in, photo_opt, photo_out = (
            [C.IMAGE_BYTES, C.PASTE_BACK, C.LARGEST],
            [C.PASTE_BACK.name, C.LARGEST.name],
            [*ens_out, C.COMPOSITE],
        )
        _ensemble(root, C.cartoonize_model(style), photo_in, photo_out, b, [*front, plain_synth, post], optional=photo_opt)
        ensembles.append(C.cartoonize_model(style))
        for prompt, art in sorted(bundle.mappers.items()):
            m_in, m_out = _one(art.inputs, f"mapper {prompt} input"), _one(art.outputs, f"mapper {prompt} output")
            placed[C.model_name(C.MAPPER, style, prompt)] = _tensor_stage(root, C.model_name(C.MAPPER, style, prompt), art, b, backend)
            edit = Step(C.model_name(C.MAPPER, style, prompt), {m_in.name: C.W_PLUS_PHOTO}, {m_out.name: C.W_PLUS_EDITED})
            synth = Step(C.model_name(C.SYNTHESIS, style), {wp_in.name: C.W_PLUS_EDITED}, {img.name: C.SYNTHESIZED})
            _ensemble(root, C.cartoonize_model(style, prompt), photo_in, photo_out, b, [*front, edit, synth, post], optional=photo_opt)
            ensembles.append(C.cartoonize_model(style, prompt))
    elif bundle.mappers:
        raise ValueError(f"style {style!r} has text mappers {sorted(bundle.mappers)} but no encoder; export the encoder too")

    index = {
        "style": style,
        "backend": backend,
        "size": bundle.size,
        "n_latent": bundle.n_latent,
        "style_dim": bundle.style_dim,
        "precision": bundle.precision,
        "batch_max": b,
        "prompts": sorted(bundle.mappers),
        "ensembles": ensembles,
        "seed_to_z": "numpy.random.default_rng(seed).normal(size=style_dim).astype(float32)",
    }
    atomic_write_text(root / "cptr_repository.json", json.dumps(index, indent=2) + "\n")
    return placed


def _ensemble(
    root: Path,
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    b: int,
    steps: Sequence[Step],
    optional: Iterable[str] = (),
) -> None:
    (root / name / "1").mkdir(parents=True, exist_ok=True)  # Triton wants a version directory, even empty
    atomic_write_text(root / name / "config.pbtxt", ensemble_config(name, inputs, outputs, b, steps, optional))
