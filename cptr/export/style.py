"""Export one style into a Triton model repository: :func:`export_style` (what ``cptr-export`` runs).

The style's generators are blended, every stage of the catalogue (:mod:`cptr.export.stages`) is
exported to ONNX and verified (:func:`cptr.export.onnx.export_stage`), engines are built when asked
(TensorRT plans, AOTInductor packages, OpenVINO IR), and :func:`cptr.triton.writer.write_repository` places
the files and writes the configs, all in a staging folder beside the repository. Only then does
:func:`cptr.triton.repository` move the style in, as new model versions beside those being served:
an interrupted or failed export leaves the repository as it was, and the other styles in it stay.
The result is a :class:`Manifest`, also written as ``manifest_<style>.json``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cptr
from cptr import contracts
from cptr.contracts import ExportBundle
from cptr.engines.openvino import (
    DEFAULT_MIN_PSNR,
    MIN_PSNR_FLOOR,
    EngineConfig,
    OpenVINOUnavailable,
    build_openvino_engine,
    check_min_psnr,
    cpu_capabilities,
    import_openvino,
    openvino_version,
    resolve_precision,
    synthesis_renderer,
)
from cptr.engines.openvino import PRECISIONS as OPENVINO_PRECISIONS
from cptr.engines.tensorrt import TensorRTUnavailable, build_engine, import_tensorrt
from cptr.engines.torch_aot import build_torch_engine
from cptr.export import onnx as onnx_export
from cptr.export import stages as catalogue
from cptr.export.onnx import PRECISIONS, ExportError
from cptr.export.stages import GENERATOR
from cptr.io import atomic_write_text, sha256_file
from cptr.options import option
from cptr.styles import BUILTIN_PREFIX, StyleError, StyleInfo, no_encoder_hint, parse_mapper_options
from cptr.styles.resolve import load_style, resolve_style
from cptr.triton import LayoutError, Published, publish, read_index
from cptr.triton.repository import LOCK_FILE, relocate
from cptr.triton.writer import write_repository

ENGINES = ("onnx", "trt", "torch", "openvino")
BACKENDS = ("python", "native")
MANIFEST_FORMAT = "cptr-export/1"


class ExportFailed(RuntimeError):
    """The export stopped; the previous output directory is unchanged."""


@dataclass
class ExportOptions:
    """Everything an export needs. Each field is one option of ``cptr-export`` (its flag and help are
    declared here, :mod:`cptr.options`); callers may build it directly."""

    style: str | None = option(
        None, help="Registered style name (default: the embedded 'demo'); with --source/--target: the name to give it."
    )
    source: Path | None = option(None, help="Source (real-face) generator checkpoint, instead of a registered style.")
    target: Path | None = option(None, help="Fine-tuned (cartoon) generator checkpoint.")
    alpha: float | None = option(None, min=0.0, max=1.0, help="Blend weight of the target (default: the style's).")
    swap_res: int | None = option(None, help="Layers below this resolution come from the source (Toonify).")
    blend_width: float | None = option(None, help="Sigmoid transition width around --swap-res, in octaves.")
    inject_k: int | None = option(None, min=0, help="W+ entries a mapper edit leaves untouched (FreezeSG latent injection).")
    truncation: float = option(
        contracts.DEFAULT_TRUNCATION,
        min=0.0,
        max=1.0,
        help="Truncation psi baked into the mapping graph as the default of its optional 'truncation' input (Triton uses it; ONNX Runtime callers may feed their own).",
    )
    precision: str = option(
        "fp32", help="fp32 or fp16 (fp16 computes inside; inputs/outputs stay fp32); with --engine openvino: fp32 or bf16."
    )
    batch_max: int = option(8, min=1, help="Largest batch Triton sends to one model.")
    out: Path = option(
        Path("triton_repo"),
        "--out",
        "-o",
        help="Model repository to export into. It may hold other styles and be served: the style goes in as new model versions, complete or not at all.",
    )
    backend: str = option("python", help="Repository flavour: python (bundled tritonserver) or native (onnxruntime/tensorrt backends).")
    engine: str = option("onnx", help="onnx, trt (TensorRT plans), torch (AOTInductor packages) or openvino (OpenVINO IR, CPU).")
    encoder: Path | None = option(None, help="Image -> W+ encoder checkpoint (overrides the style's).")
    mappers: dict[str, Path] = option(
        factory=dict,
        flags=("--mapper",),
        help="Text mapper PROMPT=PATH (repeatable; adds to the style's).",
        cli_type=list[str],
        parse=lambda items: {k: Path(v) for k, v in parse_mapper_options(items).items()},
    )
    with_generator: bool = option(False, help="Also export z -> image as one graph (generator.onnx).")
    plugins: bool = option(
        False,
        help="Emit upfirdn2d / bias-act as TensorRT plugin nodes (UpFirDn2d, FusedBiasLeakyReLU, namespace cptr); build the engine with libcptr_trt_plugins.so.",
    )
    opset: int = option(17, min=17, help="ONNX opset.")
    verify: bool = option(True, help="Check every graph in ONNX Runtime against PyTorch (batch 1 and 3).")
    quiet: bool = option(False, "--quiet", "-q", help="No progress output.")
    # --engine openvino (cptr.engines.openvino): tuning recorded in the configs, and the bf16 quality gate
    ov_hint: str = option(
        "latency", help="--engine openvino: performance hint, latency (one request on every core) or throughput (parallel streams)."
    )
    ov_streams: int | str | None = option(
        None, cli_type=str | None, help="--engine openvino: streams, a number or auto (default: the hint's choice)."
    )
    ov_threads: int | None = option(
        None, min=1, help="--engine openvino: inference threads shared by the streams (default: one per physical core)."
    )
    ov_min_psnr: float = option(
        DEFAULT_MIN_PSNR,
        help=f"--engine openvino --precision bf16: the least PSNR in dB of every stage's images against fp32 PyTorch (at least {MIN_PSNR_FLOOR:g}).",
    )
    ov_static_batches: str | tuple[int, ...] = option(
        "",
        "--ov-static-batch",
        cli_type=str,
        help="--engine openvino, python flavour: batch sizes that each get a model compiled for that batch, e.g. 1 or 1,4 (faster: 12-19% in bf16 on the 256 px synthesis; costs a compile each at server start); other sizes run on the dynamic-batch model.",
    )


@dataclass
class Manifest:
    """What an export wrote and how (``manifest.json`` of the repository; :meth:`to_dict` is its JSON)."""

    style: str
    created: str
    source: str  # "sha256:..." of the checkpoint, or "builtin:..."
    target: str
    alpha: float
    swap_res: int | None
    blend_width: float | None
    inject_k: int
    plugins: bool
    blend_weights: dict[str, float]
    truncation: float
    size: int
    n_latent: int
    style_dim: int
    precision: str
    opset: int
    batch_max: int
    backend: str
    engine: str
    verified: bool
    verify_batch_sizes: list[int]
    tolerance: float
    versions: dict[str, str]
    models: dict[str, dict[str, Any]]  # Triton model name -> file, contract, errors, sha256...
    notes: list[str]
    elapsed_s: float | None = None
    format: str = MANIFEST_FORMAT
    published: Published | None = field(default=None, repr=False, compare=False)  # what went into the repository (not written)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("published")
        out = {"format": d.pop("format")}
        out.update(d)
        if out["elapsed_s"] is None:
            del out["elapsed_s"]
        return out


# --------------------------------------------------------------------------- helpers


def _versions(engine: str = "onnx") -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    versions = {
        "cptr": cptr.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    if engine == "openvino":
        versions["openvino"] = openvino_version() or "missing"
    return versions


def onnx_precision(precision: str) -> str:
    """The precision of the ONNX graphs: an OpenVINO bf16 export builds its engines from fp32 graphs."""
    return "fp32" if precision == "bf16" else precision


def openvino_config(opts: ExportOptions):
    """The :class:`cptr.engines.openvino.EngineConfig` asked for by ``opts``."""

    try:
        return EngineConfig(opts.precision, opts.ov_hint, opts.ov_streams, opts.ov_threads, opts.ov_static_batches)
    except ValueError as e:
        raise ExportFailed(f"--engine openvino: {e}") from None


def _check_options(opts: ExportOptions) -> None:
    if opts.engine == "openvino":
        _check_openvino_options(opts)
    elif opts.precision == "bf16":
        raise ExportFailed("--precision bf16 is an OpenVINO engine precision: add --engine openvino (CPU serving)")
    elif opts.precision not in PRECISIONS:
        raise ExportFailed(f"--precision must be one of {', '.join(PRECISIONS)}, got {opts.precision!r}")
    elif (opts.ov_hint, opts.ov_streams, opts.ov_threads, opts.ov_min_psnr) != (
        "latency",
        None,
        None,
        DEFAULT_MIN_PSNR,
    ) or opts.ov_static_batches:
        raise ExportFailed(
            "--ov-hint, --ov-streams, --ov-threads, --ov-min-psnr and --ov-static-batch apply to the OpenVINO engine: add --engine openvino"
        )
    if opts.backend not in BACKENDS:
        raise ExportFailed(f"--backend must be one of {', '.join(BACKENDS)}, got {opts.backend!r}")
    if opts.batch_max < 1:
        raise ExportFailed(f"--batch-max must be >= 1, got {opts.batch_max}")
    if not 0.0 <= opts.truncation <= 1.0:
        raise ExportFailed(f"--truncation must be in [0, 1], got {opts.truncation}")
    if opts.engine not in ENGINES:
        raise ExportFailed(f"--engine must be one of {', '.join(ENGINES)}, got {opts.engine!r}")
    if opts.engine == "trt":
        try:
            import_tensorrt()
        except TensorRTUnavailable as e:
            raise ExportFailed(f"--engine trt: {e}") from None
        if opts.backend != "native":
            raise ExportFailed("TensorRT plans are served by Triton's tensorrt backend: add --backend native (or use --engine onnx)")


def _check_openvino_options(opts: ExportOptions) -> None:
    if opts.precision not in OPENVINO_PRECISIONS:
        raise ExportFailed(f"--engine openvino runs {' or '.join(OPENVINO_PRECISIONS)}, got --precision {opts.precision}")
    if opts.plugins:
        raise ExportFailed("--plugins emits TensorRT plugin nodes, which OpenVINO cannot run: leave it out with --engine openvino")
    config = openvino_config(opts)
    if config.static_batches and opts.backend == "native":
        raise ExportFailed(
            "--ov-static-batch: Triton's openvino backend compiles the model itself; static batch sizes apply to the python flavour (--backend python)"
        )
    if config.static_batches and config.static_batches[-1] > opts.batch_max:
        raise ExportFailed(
            f"--ov-static-batch: {config.static_batches[-1]} is larger than --batch-max {opts.batch_max}, the largest batch served"
        )
    try:
        check_min_psnr(opts.ov_min_psnr)
        import_openvino()
    except ValueError as e:
        raise ExportFailed(f"--ov-min-psnr: {e}") from None
    except OpenVINOUnavailable as e:
        raise ExportFailed(f"--engine openvino: {e}") from None


def _checkpoint_id(ref: str) -> str:
    return ref if ref.startswith(BUILTIN_PREFIX) else f"sha256:{sha256_file(ref)}"


class _Progress:
    """Rich progress bar over the export steps (silent with ``quiet``)."""

    def __init__(self, quiet: bool, total: int):
        self._p = None
        if not quiet:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=False)
            self._task = self._p.add_task("export", total=total)

    def __enter__(self) -> _Progress:
        if self._p:
            self._p.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._p:
            self._p.__exit__(*exc)

    def step(self, text: str) -> None:
        if self._p:
            self._p.update(self._task, description=text)

    def done(self, text: str) -> None:
        if self._p:
            self._p.console.print(f"  [green]ok[/green] {text}")
            self._p.advance(self._task)

    def note(self, text: str) -> None:
        if self._p:
            self._p.console.print(f"  [yellow]note[/yellow] {text}")


def _spec_entries(specs) -> list[dict[str, Any]]:
    return [{"name": s.name, "dtype": s.dtype, "dims": list(s.dims)} for s in specs]


def _model_entry(art, placed: dict[str, str], root: Path) -> dict[str, Any]:
    entry = {
        "stage": art.stage,
        "file": placed["file"],
        "inputs": _spec_entries(art.inputs),
        "outputs": _spec_entries(art.outputs),
        "max_abs_error": art.max_abs_error,
        **{k: v for k, v in art.extra.items() if k not in ("engine_path", "torch_engine_path", "openvino_path")},
        "sha256": sha256_file(root / placed["file"]),
        "bytes": (root / placed["file"]).stat().st_size,
    }
    for key in ("engine_file", "engine_weights_file"):  # a plan, a .pt2, or OpenVINO's model.xml + model.bin
        if key in placed:
            entry[key] = placed[key]
            entry[key.replace("_file", "_sha256")] = sha256_file(root / placed[key])
    return entry


# --------------------------------------------------------------------------- the export


def _stage_list(r: StyleInfo, opts: ExportOptions, g, encoder, mappers: dict[str, Any]) -> list[tuple[str, str | None, Any]]:
    """``(model name, mapper prompt, catalogue stage)`` of every graph this export writes, in order."""

    out: list[tuple[str, str | None, Any]] = [
        (contracts.model_name(contracts.MAPPING, r.name), None, catalogue.mapping(g, opts.truncation)),
        (contracts.model_name(contracts.SYNTHESIS, r.name), None, catalogue.synthesis(g, opts.plugins)),
    ]
    if opts.with_generator:
        out.append((contracts.model_name(contracts.GENERATOR, r.name), None, catalogue.generator(g)))
    if encoder is not None:
        out.append((contracts.model_name(contracts.ENCODER, r.name), None, catalogue.encoder(encoder)))
    for prompt, mapper in sorted(mappers.items()):
        stage = catalogue.mapper(mapper, g, r.inject_k)
        out.append((contracts.model_name(contracts.MAPPER, r.name, prompt), prompt, stage))
    return out


_STEP_TEXT = {
    "mapping": "export + verify in ONNX Runtime",
    "synthesis": "export + verify in ONNX Runtime",
    "generator": "export + verify (mapping + synthesis)",
}


def _build_engines(
    opts: ExportOptions, built: dict[str, tuple[Any, Any]], stage_dir: Path, prog: _Progress, batch_sizes: list[int], notes: list[str]
) -> None:
    """TensorRT plans or OpenVINO IR (from the verified ONNX files), or AOTInductor packages, recorded in each artifact."""

    if opts.engine == "openvino":
        _build_openvino(opts, built, stage_dir, prog, batch_sizes, notes)
        return
    if opts.engine == "trt":
        profile = (1, min(4, opts.batch_max), opts.batch_max)
        for name, (stage, art) in built.items():
            if stage.key == GENERATOR:
                continue
            prog.step(f"{name}: TensorRT engine")
            plan = stage_dir / f"{name}.plan"
            art.extra["trt"] = build_engine(art.onnx_path, plan, profile=profile, fp16=opts.precision == "fp16")
            art.extra["engine_path"] = str(plan)
            prog.done(f"{name}: TensorRT plan")
        return
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if opts.precision == "fp16" and device == "cpu":
        raise ExportFailed("--engine torch --precision fp16 needs CUDA; use --precision fp32 on a CPU machine")
    for name, (stage, art) in built.items():
        if stage.key not in (contracts.MAPPING, contracts.SYNTHESIS):
            continue
        prog.step(f"{stage.key}: compiling the torch engine (AOTInductor, {device})")
        path = stage_dir / f"{name}.pt2"
        art.extra["torch_engine"] = build_torch_engine(
            copy.deepcopy(stage.served_module),
            stage.served_examples(2),
            [s.name for s in stage.served_inputs],
            path,
            device=device,
            precision=opts.precision,
            batch_max=opts.batch_max,
        )
        art.extra["torch_engine_path"] = str(path)
        prog.done(f"{stage.key}: torch engine")


def _build_openvino(
    opts: ExportOptions, built: dict[str, tuple[Any, Any]], stage_dir: Path, prog: _Progress, batch_sizes: list[int], notes: list[str]
) -> None:
    """OpenVINO IR for every served stage, compiled in the asked precision and checked in image terms.

    bf16 falls back to fp32 (with a note) where the CPU lacks it; latent stages are judged by the
    images the fp32 synthesis reference makes of their outputs (:mod:`cptr.engines.openvino`).
    """

    config = openvino_config(opts)
    capabilities = cpu_capabilities()
    precision, notice = resolve_precision(config.precision, capabilities)
    if notice:
        notes.append(f"--precision {config.precision}: {notice}")
        prog.note(notes[-1])
    synthesis = next(stage for stage, _ in built.values() if stage.key == contracts.SYNTHESIS)
    render = synthesis_renderer(synthesis.reference, n_latent=synthesis.inputs[0].dims[0])
    for name, (stage, art) in built.items():
        if stage.key == GENERATOR:
            continue
        prog.step(f"{name}: OpenVINO IR, {precision} engine, quality check")
        xml = stage_dir / f"{name}.xml"
        try:
            meta = build_openvino_engine(
                art.onnx_path,
                xml,
                stage,
                config,
                verify=opts.verify,
                batch_sizes=batch_sizes,
                min_psnr=opts.ov_min_psnr,
                render=None if stage.key == contracts.SYNTHESIS else render,
                capabilities=capabilities,
            )
        except ExportError:  # the quality check failed: its message has the figures
            raise
        except (RuntimeError, OSError) as e:  # conversion or compilation
            raise ExportFailed(f"{name}: OpenVINO could not build the engine: {type(e).__name__}: {_first_line(e)}") from None
        art.extra["openvino"] = meta
        art.extra["openvino_path"] = str(xml)
        quality = meta.get("quality", {})
        prog.done(
            f"{name}: OpenVINO {meta['precision']}"
            + (f", PSNR {quality['psnr_db']} dB, max abs error {quality['max_abs']:.3g}" if quality else "")
        )


def export_style(opts: ExportOptions) -> Manifest:
    """Export one style into ``opts.out`` atomically; returns its :class:`Manifest`.

    Raises :class:`ExportFailed` (or :class:`cptr.export.onnx.ExportError`) with the reason; the
    previous contents of ``opts.out`` are then unchanged.
    """

    _check_options(opts)
    check_repository(Path(opts.out))
    try:
        r = resolve_style(
            opts.style,
            source=opts.source,
            target=opts.target,
            alpha=opts.alpha,
            swap_res=opts.swap_res,
            blend_width=opts.blend_width,
            inject_k=opts.inject_k,
            encoder=opts.encoder,
            mappers=opts.mappers,
        )
    except StyleError as e:
        raise ExportFailed(str(e)) from None
    batch_sizes = sorted({1, min(3, opts.batch_max)})
    started = time.time()

    n_steps = 3 + bool(r.encoder) + len(r.mappers) + opts.with_generator
    with _Progress(opts.quiet, n_steps) as prog:
        prog.step(f"loading style {r.name!r}")
        try:
            loaded = load_style(r)
        except StyleError as e:
            raise ExportFailed(str(e)) from None
        g = loaded.generator
        prog.done(
            f"blended {r.name}: alpha={r.alpha:g} swap_res={r.swap_res} blend_width={r.blend_width} ({g.size}px, n_latent={g.n_latent})"
        )

        notes: list[str] = []
        out = Path(opts.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        with staging_directory(out) as tmp:
            stage_dir = tmp / ".staging"
            stage_dir.mkdir()
            common = {"verify": opts.verify, "batch_sizes": batch_sizes, "opset": opts.opset}
            graph_precision = onnx_precision(opts.precision)
            built: dict[str, tuple[Any, Any]] = {}
            by_key: dict[str, Any] = {}
            mappers: dict[str, Any] = {}
            for name, prompt, stage in _stage_list(r, opts, g, loaded.encoder, loaded.mappers):
                label = f"mapper {prompt}" if prompt else stage.key
                prog.step(f"{label}: {_STEP_TEXT.get(stage.key, 'export + verify')}")
                art = onnx_export.export_stage(stage, stage_dir / f"{name}.onnx", graph_precision, **common)
                built[name] = (stage, art)
                if prompt:
                    mappers[prompt] = art
                else:
                    by_key[stage.key] = art
                prog.done(f"{label:<10} max abs error {art.max_abs_error}")
            if opts.engine != "onnx":
                _build_engines(opts, built, stage_dir, prog, batch_sizes, notes)
            precision = _served_precision(opts, built)
            if opts.engine == "openvino" and opts.backend == "native" and precision == "fp32":
                notes.append(
                    "native flavour: Triton's openvino backend has no parameter for f32 inference; on a CPU with bf16 "
                    "OpenVINO runs these models in bf16 (its default there). Serve the python flavour for fp32 there"
                )
                prog.note(notes[-1])

            arts = {name: art for name, (_, art) in built.items()}
            if contracts.ENCODER not in by_key:
                notes.append(f"only generate_{r.name} is built: {no_encoder_hint(r.name)}")
                prog.note(notes[-1])
            if mappers and contracts.ENCODER not in by_key:
                notes.append(f"mappers {sorted(mappers)} left out of the repository: they need an encoder")
                prog.note(notes[-1])
                arts = {n: a for n, a in arts.items() if built[n][0].key != contracts.MAPPER}
                mappers = {}
            # what the repository and the manifest both record of the graphs
            shape = dict(
                style=r.name, size=g.size, n_latent=g.n_latent, style_dim=g.style_dim, precision=precision, batch_max=opts.batch_max
            )
            bundle = ExportBundle(
                **shape,
                mapping=by_key[contracts.MAPPING],
                synthesis=by_key[contracts.SYNTHESIS],
                encoder=by_key.get(contracts.ENCODER),
                mappers=mappers,
                generator=by_key.get(contracts.GENERATOR),
            )
            prog.step("writing the model repository")
            placed = write_repository(tmp, bundle, opts.backend)
            models = {name: _model_entry(art, placed[name], tmp) for name, art in arts.items()}
            for name, art in arts.items():
                if models[name]["sha256"] != _sha256(art.onnx_path):
                    raise ExportFailed(f"{name}: {models[name]['file']} is altered after writing the repository")
                ov = art.extra.get("openvino")
                if ov and (models[name].get("engine_sha256"), models[name].get("engine_weights_sha256")) != (
                    ov["ir_sha256"],
                    ov["ir_weights_sha256"],
                ):
                    raise ExportFailed(f"{name}: the OpenVINO IR placed in the repository differs from the one verified")
            manifest = Manifest(
                **shape,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                source=_checkpoint_id(r.source),
                target=_checkpoint_id(r.target),
                alpha=r.alpha,
                swap_res=r.swap_res,
                blend_width=r.blend_width,
                inject_k=r.inject_k,
                plugins=opts.plugins,
                blend_weights={str(k): v for k, v in g.blend_weights.items()},
                truncation=opts.truncation,
                opset=opts.opset,
                backend=opts.backend,
                engine=opts.engine,
                verified=opts.verify,
                verify_batch_sizes=batch_sizes,
                tolerance=onnx_export.TOLERANCES[graph_precision],
                versions=_versions(opts.engine),
                models=models,
                notes=notes,
            )
            manifest.elapsed_s = round(time.time() - started, 2)
            atomic_write_text(tmp / "manifest.json", json.dumps(manifest.to_dict(), indent=2) + "\n")
            shutil.rmtree(stage_dir, ignore_errors=True)
            prog.step("publishing into the repository")
            manifest.published = publish(tmp, out)
            manifest.models = relocate({"models": manifest.models}, manifest.published.versions)["models"]
        prog.step("done")
        changed = manifest.published.changed
        prog.done(f"wrote {out}/ ({len(models)} ONNX models; new versions of {len(changed)} of {len(manifest.published.versions)} models)")
    return manifest


def check_repository(out: Path) -> None:
    """Refuse an ``--out`` that exists and is not a repository cptr-export wrote: nothing of a user's
    folder is overwritten or mixed with models."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportFailed(f"--out {out} is a file, not a model repository folder")
    try:
        styles = read_index(out)
    except LayoutError as e:
        raise ExportFailed(str(e)) from None
    if not styles and out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise ExportFailed(f"--out {out} exists and is not a model repository written by cptr-export; choose an empty or new folder")


@contextlib.contextmanager
def staging_directory(out: Path) -> Iterator[Path]:
    """A folder beside ``out`` (same file system: :func:`cptr.triton.repository` renames out of it), removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _served_precision(opts: ExportOptions, built: dict[str, tuple[Any, Any]]) -> str:
    """The precision the served stages run in: an OpenVINO bf16 export that fell back runs fp32."""
    if opts.engine != "openvino":
        return opts.precision
    return next((art.extra["openvino"]["precision"] for _, art in built.values() if "openvino" in art.extra), opts.precision)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _sha256(path: Path) -> str:
    return sha256_file(path)


def run_export(opts: ExportOptions) -> dict[str, Any]:
    """:func:`export_style`, its manifest as the JSON dict of ``manifest.json``."""
    return export_style(opts).to_dict()
