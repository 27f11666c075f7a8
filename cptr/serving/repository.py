"""Write a Triton model repository for one exported style: one model per stage, plus ensembles.

Layout (``<style>`` = bundle.style, ``<prompt>`` = each text mapper)::

    preprocess/                  image_bytes -> aligned [3,256,256], transform [3,3]   (Python)
    encoder_<style>/             aligned -> w_plus                                       (ONNX)
    mapper_<style>_<prompt>/     w_plus -> edited w_plus                                 (ONNX)
    synthesis_<style>/           w_plus -> image [3,S,S]                                 (ONNX)
    postprocess/                 image (+ image_bytes, transform, paste_back) -> PNG    (Python)
    seeds_<style>/               seed, mix -> z, z_mix                                   (Python)
    mapping_<style>/             z -> w                                                  (ONNX)
    style_mix_<style>/           w, w_mix, mix -> w_plus                                 (Python)
    cartoonize_<style>[_<prompt>]/  ensemble: image_bytes [, paste_back] -> output_bytes, image
    generate_<style>/            ensemble: seed, mix -> output_bytes, image

Two flavours share names and tensor contracts: ``python`` (every model on the Python backend, the
ONNX stages run by ONNX Runtime; works with the tritonserver bundled in nvidia-pytriton) and
``native`` (ONNX stages on ``onnxruntime_onnx`` or ``tensorrt_plan``, for NGC containers). The
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
from cptr.contracts import ExportBundle, StageArtifact, TensorSpec
from cptr.io import atomic_write_text
from cptr.serving import names

BACKENDS = ("python", "native")
QUEUE_DELAY_US = 2000  # dynamic batching: wait at most 2 ms to fill a batch

Z_MIX = "z_mix"
SYNTH = "synthesized"
W_MIX = "w_mix"


def _dims(dims: Iterable[int]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in dims) + " ]"


def _tensor(spec: TensorSpec, optional: bool = False) -> str:
    dtype = "TYPE_STRING" if spec.dtype == "BYTES" else f"TYPE_{spec.dtype}"
    extra = "\n    optional: true" if optional else ""
    return f'  {{\n    name: "{spec.name}"\n    data_type: {dtype}\n    dims: {_dims(spec.dims)}{extra}\n  }}'


def _io(kind: str, specs: Sequence[TensorSpec], optional: Iterable[str] = ()) -> str:
    opt = set(optional)
    return f"{kind} [\n" + ",\n".join(_tensor(s, s.name in opt) for s in specs) + "\n]\n"


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
    body = _io("input", inputs, optional) + _io("output", outputs)
    batching = (
        "dynamic_batching {\n"
        f"  preferred_batch_size: {_dims(_preferred(batch_max))}\n"
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
    name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], batch_max: int, steps: Sequence[Step], optional: Iterable[str] = ()
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
        + _io("input", inputs, optional)
        + _io("output", outputs)
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


def _tensor_stage(root: Path, name: str, art: StageArtifact, batch_max: int, backend: str) -> None:
    """An ONNX (or TensorRT plan) stage in either flavour."""
    _place_file(art.onnx_path, root / name / "1" / "model.onnx")
    engine = art.extra.get("engine_path") if backend == "native" else None
    if engine:  # the ONNX file stays beside the plan: the plan's source, recorded in manifest.json
        _place_file(Path(engine), root / name / "1" / "model.plan")
        cfg = model_config(name, art.inputs, art.outputs, batch_max, platform="tensorrt_plan", kind="KIND_GPU", default_file="model.plan")
        atomic_write_text(root / name / "config.pbtxt", cfg)
    elif backend == "native":
        cfg = model_config(name, art.inputs, art.outputs, batch_max, platform="onnxruntime_onnx", kind="KIND_GPU", default_file="model.onnx")
        atomic_write_text(root / name / "config.pbtxt", cfg)
    else:
        cfg = model_config(name, art.inputs, art.outputs, batch_max, params={"onnx_file": "model.onnx"})
        _python_model(root, name, "onnx_stage", cfg)


def _one(specs: Sequence[TensorSpec], what: str) -> TensorSpec:
    if len(specs) != 1:
        raise ValueError(f"{what} must have exactly one tensor, got {[s.name for s in specs]}")
    return specs[0]


def write_repository(root: Path, bundle: ExportBundle, backend: str = "python") -> None:
    """Write every model and ensemble of ``bundle`` into ``root`` (see the module docstring).

    ``root`` is the exporter's temporary directory (swapped in atomically afterwards); each staged
    ONNX file (and TensorRT plan, native flavour) is hard-linked to ``<root>/<model>/1/model.onnx``
    (``model.plan``); the caller deletes its staging directory.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    style, b = names.check_name(bundle.style), int(bundle.batch_max)
    if not 1 <= b <= C.MAX_SEEDS_PER_REQUEST:
        raise ValueError(f"batch_max must be in [1, {C.MAX_SEEDS_PER_REQUEST}], got {b}")

    # Random generation: seeds -> mapping (x2) -> style mix -> synthesis -> postprocess.
    z_in = _one(bundle.mapping.inputs, "mapping input")
    w_out = _one(bundle.mapping.outputs, "mapping output")
    wp_in = _one(bundle.synthesis.inputs, "synthesis input")
    img = _one(bundle.synthesis.outputs, "synthesis output")
    z_mix, w_mix = dataclasses.replace(z_in, name=Z_MIX), dataclasses.replace(w_out, name=W_MIX)
    _tensor_stage(root, names.mapping(style), bundle.mapping, b, backend)
    _tensor_stage(root, names.synthesis(style), bundle.synthesis, b, backend)
    seeds_params = {"style_dim": str(bundle.style_dim), "z_output": z_in.name, "z_mix_output": Z_MIX}
    _python_model(root, names.seeds(style), "seeds", model_config(names.seeds(style), [C.SEED, C.MIX], [z_in, z_mix], b, params=seeds_params))
    mix_params = {"n_latent": str(bundle.n_latent), "w_input": w_out.name, "w_mix_input": W_MIX, "w_plus_output": wp_in.name}
    _python_model(
        root, names.style_mix(style), "style_mix", model_config(names.style_mix(style), [w_out, w_mix, C.MIX], [wp_in], b, params=mix_params)
    )

    post_image = C.image(-1, name=C.image(1).name)  # any resolution: shared by every style
    _python_model(
        root,
        names.postprocess,
        "postprocess",
        model_config(
            names.postprocess,
            [post_image, C.IMAGE_BYTES, C.TRANSFORM, C.PASTE_BACK],
            [C.OUTPUT_BYTES, post_image],
            b,
            params={"image_input": post_image.name},
            optional=[C.IMAGE_BYTES.name, C.TRANSFORM.name, C.PASTE_BACK.name],
        ),
    )
    # The raw image goes out through postprocess (a pass-through): Triton 2.51 deadlocks when a
    # client requests a subset of the outputs and one ensemble output also feeds another step.
    ens_out = [C.OUTPUT_BYTES, img]
    post_out = {C.OUTPUT_BYTES.name: C.OUTPUT_BYTES.name, post_image.name: img.name}
    synth_step = Step(names.synthesis(style), {wp_in.name: wp_in.name}, {img.name: SYNTH})
    gen_steps = [
        Step(names.seeds(style), {C.SEED.name: C.SEED.name, C.MIX.name: C.MIX.name}, {z_in.name: z_in.name, Z_MIX: Z_MIX}),
        Step(names.mapping(style), {z_in.name: z_in.name}, {w_out.name: w_out.name}),
        Step(names.mapping(style), {z_in.name: Z_MIX}, {w_out.name: W_MIX}),
        Step(names.style_mix(style), {w_out.name: w_out.name, W_MIX: W_MIX, C.MIX.name: C.MIX.name}, {wp_in.name: wp_in.name}),
        synth_step,
        Step(names.postprocess, {post_image.name: SYNTH}, post_out),
    ]
    _ensemble(root, names.generate(style), [C.SEED, C.MIX], ens_out, b, gen_steps)

    # Photo -> cartoon: preprocess -> encoder -> [mapper] -> synthesis -> postprocess.
    ensembles = [names.generate(style)]
    if bundle.encoder is not None:
        enc_in = _one(bundle.encoder.inputs, "encoder input")
        enc_out = _one(bundle.encoder.outputs, "encoder output")
        # An encoder with another input size gets its own preprocess_<size> (same code, crop size parameter).
        size = int(enc_in.dims[-1])
        if len(enc_in.dims) != 3 or enc_in.dims[0] != 3 or enc_in.dims[1] != size or size < 8:
            raise ValueError(f"encoder input must be [3, S, S], got {list(enc_in.dims)}")
        pre = names.preprocess if size == C.ALIGNED_SIZE else f"{names.preprocess}_{size}"
        pre_out = dataclasses.replace(C.ALIGNED, dims=(3, size, size))
        _python_model(root, pre, "preprocess", model_config(pre, [C.IMAGE_BYTES], [pre_out, C.TRANSFORM], b, params={"aligned_size": str(size)}))
        _tensor_stage(root, names.encoder(style), bundle.encoder, b, backend)
        front = [
            Step(pre, {C.IMAGE_BYTES.name: C.IMAGE_BYTES.name}, {C.ALIGNED.name: C.ALIGNED.name, C.TRANSFORM.name: C.TRANSFORM.name}),
            Step(names.encoder(style), {enc_in.name: C.ALIGNED.name}, {enc_out.name: "w_plus_photo"}),
        ]
        post = Step(
            names.postprocess,
            {post_image.name: SYNTH, C.IMAGE_BYTES.name: C.IMAGE_BYTES.name, C.TRANSFORM.name: C.TRANSFORM.name, C.PASTE_BACK.name: C.PASTE_BACK.name},
            post_out,
        )
        plain_synth = Step(names.synthesis(style), {wp_in.name: "w_plus_photo"}, {img.name: SYNTH})
        photo_in = [C.IMAGE_BYTES, C.PASTE_BACK]  # paste_back is optional: postprocess reads a missing one as 0
        _ensemble(root, names.cartoonize(style), photo_in, ens_out, b, [*front, plain_synth, post], optional=[C.PASTE_BACK.name])
        ensembles.append(names.cartoonize(style))
        for prompt, art in sorted(bundle.mappers.items()):
            m_in, m_out = _one(art.inputs, f"mapper {prompt} input"), _one(art.outputs, f"mapper {prompt} output")
            _tensor_stage(root, names.mapper(style, prompt), art, b, backend)
            edit = Step(names.mapper(style, prompt), {m_in.name: "w_plus_photo"}, {m_out.name: "w_plus_edited"})
            synth = Step(names.synthesis(style), {wp_in.name: "w_plus_edited"}, {img.name: SYNTH})
            _ensemble(root, names.cartoonize(style, prompt), photo_in, ens_out, b, [*front, edit, synth, post], optional=[C.PASTE_BACK.name])
            ensembles.append(names.cartoonize(style, prompt))
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


def _ensemble(
    root: Path, name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], b: int, steps: Sequence[Step], optional: Iterable[str] = ()
) -> None:
    (root / name / "1").mkdir(parents=True, exist_ok=True)  # Triton wants a version directory, even empty
    atomic_write_text(root / name / "config.pbtxt", ensemble_config(name, inputs, outputs, b, steps, optional))
