"""``cptr-export``: turn a registered style into verified ONNX models inside a Triton repository.

The whole output directory is built under a temporary name and swapped in at the end
(:func:`cptr.io.atomic_directory`): an interrupted or failed export leaves the previous one intact.

Encoders and text mappers go through :mod:`cptr.export.encoder_mapper`; the demo style's encoder
and smile mapper are files in the package, like its generators.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

EXAMPLES = """
Examples:

\b
  # the embedded demo style -> triton_repo/ (what `make demo` runs)
  cptr-export --style demo --alpha 0.7
  # a registered style (cptr styles add ...), fp16 graphs
  cptr-export --style webtoon --alpha 0.7 --swap-res 16 --precision fp16 --out /models/webtoon
  # checkpoints directly, soft layer swap
  cptr-export --source ffhq256.pt --target webtoon.pt --style webtoon --swap-res 32 --blend-width 1.0
  # photo -> cartoon with a text edit, for Triton's native onnxruntime backend
  cptr-export --style webtoon --encoder e4e.pt --mapper smile=smile.pt --inject-k 4 --backend native
"""

ENGINES = ("onnx", "trt", "torch")
BACKENDS = ("python", "native")


class ExportFailed(RuntimeError):
    """The export stopped; the previous output directory is unchanged."""


@dataclass
class ExportOptions:
    """Everything ``cptr-export`` needs; the CLI fills it, tests may build it directly."""

    out: Path = Path("triton_repo")
    style: str | None = None
    source: Path | None = None
    target: Path | None = None
    alpha: float | None = None
    swap_res: int | None = None
    blend_width: float | None = None
    inject_k: int | None = None
    truncation: float = 0.7
    precision: str = "fp32"
    batch_max: int = 8
    backend: str = "python"
    engine: str = "onnx"
    verify: bool = True
    encoder: Path | None = None
    mappers: dict[str, Path] = field(default_factory=dict)
    with_generator: bool = False
    plugins: bool = False
    opset: int = 17
    quiet: bool = False


# --------------------------------------------------------------------------- helpers


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    import cptr

    return {
        "cptr": cptr.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def _optional(module: str, attr: str) -> Callable[..., Any] | None:
    """``module.attr`` if that module exists (other parts of CPTR may not be installed/written yet)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            return None
        raise
    return getattr(mod, attr, None)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ExportFailed(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "trt":
        if _optional("cptr.export.trt", "build_engine") is None:
            raise ExportFailed(
                "--engine trt needs the TensorRT builder (cptr/export/trt.py), which this installation lacks; "
                "export with --engine onnx (ONNX Runtime / Triton onnxruntime backend)"
            )
        from cptr.export.trt import TensorRTUnavailable, import_tensorrt

        try:
            import_tensorrt()
        except TensorRTUnavailable as e:
            raise ExportFailed(f"--engine trt: {e}") from None
    if engine == "torch":
        if _optional("cptr.export.torch_engine", "build_torch_engine") is None:
            raise ExportFailed("--engine torch needs cptr.export.torch_engine, which this installation lacks; use --engine onnx")


@dataclass
class _Resolved:
    name: str
    source_ref: str
    target_ref: str
    alpha: float
    swap_res: int | None
    blend_width: float | None
    inject_k: int
    encoder: str | None
    mappers: dict[str, str]


def _resolve_style(opts: ExportOptions) -> _Resolved:
    from cptr.styles import DEMO_NAME, get_style, validate_name

    if (opts.source is None) != (opts.target is None):
        raise ExportFailed("--source and --target go together (the base generator and its fine-tuned version)")
    if opts.source is not None:
        name = validate_name(opts.style or "custom")
        src, tgt = Path(opts.source).expanduser().resolve(), Path(opts.target).expanduser().resolve()
        for p, what in ((src, "--source"), (tgt, "--target")):
            if not p.is_file():
                raise ExportFailed(f"{what} {p} does not exist")
        return _Resolved(
            name, str(src), str(tgt), 0.7 if opts.alpha is None else opts.alpha, opts.swap_res, opts.blend_width,
            opts.inject_k or 0, str(opts.encoder) if opts.encoder else None, {k: str(v) for k, v in opts.mappers.items()},
        )
    info = get_style(opts.style or DEMO_NAME)
    mappers = dict(info.mappers)
    mappers.update({k: str(v) for k, v in opts.mappers.items()})
    encoder = str(opts.encoder) if opts.encoder else info.encoder
    return _Resolved(
        info.name,
        info.source,
        info.target,
        info.alpha if opts.alpha is None else opts.alpha,
        info.swap_res if opts.swap_res is None else opts.swap_res,
        info.blend_width if opts.blend_width is None else opts.blend_width,
        info.inject_k if opts.inject_k is None else opts.inject_k,
        encoder,
        mappers,
    )


def _checkpoint_id(ref: str) -> str:
    from cptr.io import sha256_file
    from cptr.styles import BUILTIN_PREFIX

    return ref if ref.startswith(BUILTIN_PREFIX) else f"sha256:{sha256_file(ref)}"


def _load_generators(r: _Resolved):
    from cptr.checkpoints import CheckpointError, load_generator

    try:
        return load_generator(r.source_ref), load_generator(r.target_ref)
    except CheckpointError as e:
        raise ExportFailed(str(e)) from None


class _Progress:
    """Rich progress bar over the export steps (silent with --quiet)."""

    def __init__(self, quiet: bool, total: int):
        self.quiet = quiet
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


def _artifact_entry(art, rel_file: str) -> dict[str, Any]:
    return {
        "stage": art.stage,
        "file": rel_file,
        "inputs": [{"name": s.name, "dtype": s.dtype, "dims": list(s.dims)} for s in art.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "dims": list(s.dims)} for s in art.outputs],
        "max_abs_error": art.max_abs_error,
        **{k: v for k, v in art.extra.items() if k not in ("engine_path", "torch_engine_path")},
    }


# --------------------------------------------------------------------------- the export


def _load_encoder(ref: str, generator):
    """The encoder module of a pSp/e4e checkpoint (the demo style's is a file in the package)."""
    from cptr.checkpoints import CheckpointError
    from cptr.models.encoder import load_encoder

    try:
        enc = load_encoder(ref)
    except CheckpointError as e:
        raise ExportFailed(f"encoder: {e}") from None
    if (enc.n_latent, enc.style_dim) != (generator.n_latent, generator.style_dim):
        raise ExportFailed(
            f"encoder {ref} produces W+ [{enc.n_latent}, {enc.style_dim}] but the generator takes "
            f"[{generator.n_latent}, {generator.style_dim}]; use an encoder trained for this source generator"
        )
    return enc


def _export_encoder_and_mappers(r: _Resolved, opts: ExportOptions, generator, stage_dir: Path, batch_sizes, prog: _Progress, notes: list[str]):
    """Encoder and mapper artifacts (:mod:`cptr.export.encoder_mapper`; skipped with a note if absent).

    With ``inject_k > 0`` each mapper graph is ``InjectedLatentEdit(MappedEdit(mapper), k)``: the
    first ``k`` W+ entries pass through unedited (FreezeSG latent injection).
    """
    from cptr.checkpoints import CheckpointError

    encoder_art, mapper_arts = None, {}
    if _optional("cptr.export.encoder_mapper", "export_encoder") is None:
        if r.encoder or r.mappers:
            notes.append("encoder/mappers not exported: cptr.export.encoder_mapper is not installed")
            prog.note(notes[-1])
        return encoder_art, mapper_arts
    from cptr.export import encoder_mapper as em
    from cptr.export.onnx import export_module

    common = {"verify": opts.verify, "batch_sizes": batch_sizes, "opset": opts.opset}
    if r.encoder:
        prog.step("encoder: export + verify")
        enc = _load_encoder(r.encoder, generator)
        encoder_art = em.export_encoder(enc, stage_dir / "encoder.onnx", opts.precision, **common)
        prog.done(f"encoder    max abs error {encoder_art.max_abs_error}")
    for prompt, path in sorted(r.mappers.items()):
        prog.step(f"mapper {prompt}: export + verify")
        from cptr.models.mapper import MappedEdit, load_mapper

        try:
            mapper = load_mapper(path, n_latent=generator.n_latent)
        except CheckpointError as e:
            raise ExportFailed(f"mapper {prompt!r}: {e}") from None
        if mapper.style_dim != generator.style_dim:
            raise ExportFailed(f"mapper {prompt!r} edits {mapper.style_dim}-d latents; the generator's are {generator.style_dim}-d")
        out = stage_dir / f"mapper_{prompt}.onnx"
        if r.inject_k:
            from cptr import contracts
            from cptr.blend import InjectedLatentEdit

            module = InjectedLatentEdit(MappedEdit(mapper), r.inject_k).eval()
            specs_in = [contracts.w_plus(generator.n_latent, generator.style_dim)]
            specs_out = [em.mapper_output_spec(generator.n_latent, generator.style_dim)]
            make = em.mapper_inputs(mapper, generator)
            extra = {"mapper": {**mapper.opts(), "step": module.edit.step}, "inject_k": r.inject_k}
            art = export_module(module, make(2), specs_in, specs_out, out, opts.precision, stage="mapper",
                                make_inputs=make, extra=extra, **common)
        else:
            art = em.export_mapper(mapper, out, opts.precision, generator=generator, **common)
        mapper_arts[prompt] = art
        prog.done(f"mapper {prompt}  max abs error {art.max_abs_error}")
    return encoder_art, mapper_arts


def _build_engines(opts: ExportOptions, g, arts: dict[str, Any], stage_dir: Path, prog: _Progress) -> None:
    """TensorRT plans (from the verified ONNX files) or AOTInductor packages, recorded in each artifact."""
    if opts.engine == "trt":
        from cptr.export.trt import build_engine

        profile = (1, min(4, opts.batch_max), opts.batch_max)
        for key, art in arts.items():
            if art is None:
                continue
            prog.step(f"{key}: TensorRT engine")
            plan = stage_dir / f"{key}.plan"
            art.extra["trt"] = build_engine(art.onnx_path, plan, profile=profile, fp16=opts.precision == "fp16")
            art.extra["engine_path"] = str(plan)
            prog.done(f"{key}: TensorRT plan")
        return
    import torch

    from cptr import contracts
    from cptr.export import onnx as onnx_export
    from cptr.export.torch_engine import build_torch_engine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if opts.precision == "fp16" and device == "cpu":
        raise ExportFailed("--engine torch --precision fp16 needs CUDA; use --precision fp32 on a CPU machine")
    gi = onnx_export.inference_copy(g)
    modules = {
        "mapping": (onnx_export.FixedTruncationMapping(onnx_export.MappingGraph(gi), opts.truncation),
                    onnx_export.default_inputs([contracts.z(gi.style_dim)])(2)),
        "synthesis": (onnx_export.ExportSynthesis(gi), onnx_export.synthesis_inputs(gi)(2)),
    }
    for key, (module, example) in modules.items():
        prog.step(f"{key}: compiling the torch engine (AOTInductor, {device})")
        path = stage_dir / f"{key}.pt2"
        names = ["z"] if key == "mapping" else [s.name for s in arts[key].inputs]
        arts[key].extra["torch_engine"] = build_torch_engine(module, example, names, path, device=device, precision=opts.precision, batch_max=opts.batch_max)
        arts[key].extra["torch_engine_path"] = str(path)
        prog.done(f"{key}: torch engine")


def run_export(opts: ExportOptions) -> dict[str, Any]:
    """Export one style into ``opts.out`` atomically; returns the manifest."""
    from cptr import contracts
    from cptr.blend import blend_generators
    from cptr.contracts import ExportBundle
    from cptr.export import onnx as onnx_export
    from cptr.io import atomic_directory, atomic_write_text, sha256_file
    from cptr.styles import StyleError, validate_name

    if opts.precision not in onnx_export.PRECISIONS:
        raise ExportFailed(f"--precision must be one of {', '.join(onnx_export.PRECISIONS)}, got {opts.precision!r}")
    if opts.backend not in BACKENDS:
        raise ExportFailed(f"--backend must be one of {', '.join(BACKENDS)}, got {opts.backend!r}")
    if opts.batch_max < 1:
        raise ExportFailed(f"--batch-max must be >= 1, got {opts.batch_max}")
    if not 0.0 <= opts.truncation <= 1.0:
        raise ExportFailed(f"--truncation must be in [0, 1], got {opts.truncation}")
    _check_engine(opts.engine)
    if opts.engine == "trt" and opts.backend != "native":
        raise ExportFailed("TensorRT plans are served by Triton's tensorrt backend: add --backend native (or use --engine onnx)")
    try:
        for prompt in opts.mappers:
            validate_name(prompt, "mapper prompt name")
        r = _resolve_style(opts)
    except StyleError as e:
        raise ExportFailed(str(e)) from None
    batch_sizes = sorted({1, min(3, opts.batch_max)})
    started = time.time()

    n_steps = 3 + bool(r.encoder) + len(r.mappers) + opts.with_generator
    with _Progress(opts.quiet, n_steps) as prog:
        prog.step(f"loading style {r.name!r}")
        source, target = _load_generators(r)
        try:
            g = blend_generators(source, target, r.alpha, r.swap_res, r.blend_width)
        except ValueError as e:
            raise ExportFailed(f"cannot blend style {r.name!r}: {e}") from None
        if not 0 <= r.inject_k <= g.n_latent:
            raise ExportFailed(f"--inject-k must be in [0, {g.n_latent}], got {r.inject_k}")
        prog.done(f"blended {r.name}: alpha={r.alpha:g} swap_res={r.swap_res} blend_width={r.blend_width} ({g.size}px, n_latent={g.n_latent})")

        notes: list[str] = []
        out = Path(opts.out)
        with atomic_directory(out) as tmp:
            stage_dir = tmp / ".staging"
            stage_dir.mkdir()
            common = {"verify": opts.verify, "batch_sizes": batch_sizes, "opset": opts.opset}
            prog.step("mapping: export + verify in ONNX Runtime")
            mapping = onnx_export.export_mapping(g, stage_dir / "mapping.onnx", opts.precision, default_truncation=opts.truncation, **common)
            prog.done(f"mapping    max abs error {mapping.max_abs_error}")
            prog.step("synthesis: export + verify in ONNX Runtime")
            synthesis = onnx_export.export_synthesis(g, stage_dir / "synthesis.onnx", opts.precision, plugins=opts.plugins, **common)
            prog.done(f"synthesis  max abs error {synthesis.max_abs_error}")
            generator_art = None
            if opts.with_generator:
                prog.step("generator (mapping + synthesis): export + verify")
                generator_art = onnx_export.export_generator(g, stage_dir / "generator.onnx", opts.precision, **common)
                prog.done(f"generator  max abs error {generator_art.max_abs_error}")
            encoder_art, mapper_arts = _export_encoder_and_mappers(r, opts, g, stage_dir, batch_sizes, prog, notes)
            if opts.engine != "onnx":
                _build_engines(opts, g, {"mapping": mapping, "synthesis": synthesis, "encoder": encoder_art, **mapper_arts}, stage_dir, prog)

            names = {"mapping": f"{contracts.MAPPING}_{r.name}", "synthesis": f"{contracts.SYNTHESIS}_{r.name}"}
            arts = {names["mapping"]: mapping, names["synthesis"]: synthesis}
            if generator_art is not None:
                arts[f"generator_{r.name}"] = generator_art
            if encoder_art is not None:
                arts[f"{contracts.ENCODER}_{r.name}"] = encoder_art
            for prompt, art in mapper_arts.items():
                arts[f"{contracts.MAPPER}_{r.name}_{prompt}"] = art
            models = {}
            for model_name, art in arts.items():
                # Triton treats every sub-directory as a model: the combined graph (not served) sits at the top
                rel = f"{model_name}.onnx" if art is generator_art else f"{model_name}/1/model.onnx"
                entry = _artifact_entry(art, rel)
                entry["sha256"] = sha256_file(art.onnx_path)
                entry["bytes"] = art.onnx_path.stat().st_size
                models[model_name] = entry
            manifest = {
                "format": "cptr-export/1",
                "style": r.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": _checkpoint_id(r.source_ref),
                "target": _checkpoint_id(r.target_ref),
                "alpha": r.alpha,
                "swap_res": r.swap_res,
                "blend_width": r.blend_width,
                "inject_k": r.inject_k,
                "plugins": opts.plugins,
                "blend_weights": {str(k): v for k, v in g.blend_weights.items()},
                "truncation": opts.truncation,
                "size": g.size,
                "n_latent": g.n_latent,
                "style_dim": g.style_dim,
                "precision": opts.precision,
                "opset": opts.opset,
                "batch_max": opts.batch_max,
                "backend": opts.backend,
                "engine": opts.engine,
                "verified": opts.verify,
                "verify_batch_sizes": batch_sizes,
                "tolerance": onnx_export.TOLERANCES[opts.precision],
                "versions": _versions(),
                "models": models,
                "notes": notes,
            }
            bundle = ExportBundle(
                style=r.name, size=g.size, n_latent=g.n_latent, style_dim=g.style_dim, precision=opts.precision,
                batch_max=opts.batch_max, mapping=mapping, synthesis=synthesis, encoder=encoder_art, mappers=mapper_arts,
                manifest=manifest,
            )
            write_repository = _optional("cptr.serving.repository", "write_repository")
            if mapper_arts and encoder_art is None:
                notes.append(f"mappers {sorted(mapper_arts)} left out of the repository: they need an encoder")
                prog.note(notes[-1])
                bundle.mappers = {}
                for prompt in mapper_arts:
                    models.pop(f"{contracts.MAPPER}_{r.name}_{prompt}", None)
            prog.step("writing the model repository")
            if write_repository is not None:
                write_repository(tmp, bundle, opts.backend)
            for model_name, art in arts.items():  # whatever the writer did not place
                dest = tmp / models[model_name]["file"]
                if art.onnx_path.exists() and not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    art.onnx_path.replace(dest)
                engine_file = art.extra.get("torch_engine_path") or art.extra.get("engine_path")
                suffix = ".pt2" if art.extra.get("torch_engine_path") else ".plan"
                if engine_file and Path(engine_file).exists():
                    engine_dest = tmp / model_name / "1" / f"model{suffix}"
                    if not engine_dest.exists():
                        Path(engine_file).replace(engine_dest)
                    models[model_name]["engine_file"] = f"{model_name}/1/model{suffix}"
                    models[model_name]["engine_sha256"] = sha256_file(engine_dest)
            for model_name, entry in models.items():
                placed = tmp / entry["file"]
                if not placed.is_file() or sha256_file(placed) != entry["sha256"]:
                    raise ExportFailed(f"{model_name}: {entry['file']} is missing or altered after writing the repository")
            manifest["elapsed_s"] = round(time.time() - started, 2)
            atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
            import shutil

            shutil.rmtree(stage_dir, ignore_errors=True)
        prog.step("done")
        prog.done(f"wrote {out}/ ({len(models)} ONNX models, manifest.json)")
    return manifest


# --------------------------------------------------------------------------- Typer app

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help="Export a style (blended generator, encoder, mappers) to verified ONNX models in a Triton repository.\n" + EXAMPLES)
def export(
    style: str | None = typer.Option(None, "--style", help="Registered style name (default: the embedded 'demo'); with --source/--target: the name to give it."),
    source: Path | None = typer.Option(None, "--source", help="Source (real-face) generator checkpoint, instead of a registered style."),
    target: Path | None = typer.Option(None, "--target", help="Fine-tuned (cartoon) generator checkpoint."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, max=1.0, help="Blend weight of the target (default: the style's)."),
    swap_res: int | None = typer.Option(None, "--swap-res", help="Layers below this resolution come from the source (Toonify)."),
    blend_width: float | None = typer.Option(None, "--blend-width", help="Sigmoid transition width around --swap-res, in octaves."),
    inject_k: int | None = typer.Option(None, "--inject-k", min=0, help="W+ entries a mapper edit leaves untouched (FreezeSG latent injection)."),
    truncation: float = typer.Option(0.7, "--truncation", min=0.0, max=1.0, help="Truncation psi baked into the mapping graph as the default of its optional 'truncation' input (Triton uses it; ONNX Runtime callers may feed their own)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (fp16 computes inside; inputs/outputs stay fp32)."),
    batch_max: int = typer.Option(8, "--batch-max", min=1, help="Largest batch Triton sends to one model."),
    out: Path = typer.Option(Path("triton_repo"), "--out", "-o", help="Output model repository (replaced atomically)."),
    backend: str = typer.Option("python", "--backend", help="Repository flavour: python (bundled tritonserver) or native (onnxruntime/tensorrt backends)."),
    engine: str = typer.Option("onnx", "--engine", help="onnx, trt (TensorRT plans) or torch (AOTInductor packages)."),
    encoder: Path | None = typer.Option(None, "--encoder", help="Image -> W+ encoder checkpoint (overrides the style's)."),
    mapper: list[str] = typer.Option([], "--mapper", help="Text mapper PROMPT=PATH (repeatable; adds to the style's)."),
    with_generator: bool = typer.Option(False, "--with-generator", help="Also export z -> image as one graph (generator.onnx)."),
    plugins: bool = typer.Option(False, "--plugins", help="Emit upfirdn2d / bias-act as TensorRT plugin nodes (UpFirDn2d, FusedBiasLeakyReLU, namespace cptr); build the engine with libcptr_trt_plugins.so."),
    opset: int = typer.Option(17, "--opset", min=17, help="ONNX opset."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check every graph in ONNX Runtime against PyTorch (batch 1 and 3)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    from cptr.export.onnx import ExportError
    from cptr.styles import StyleError, parse_mapper_options

    had_repository = out.exists()
    try:
        mappers = {k: Path(v) for k, v in parse_mapper_options(mapper).items()}
        opts = ExportOptions(
            out=out, style=style, source=source, target=target, alpha=alpha, swap_res=swap_res, blend_width=blend_width,
            inject_k=inject_k, truncation=truncation, precision=precision, batch_max=batch_max, backend=backend,
            engine=engine, verify=verify, encoder=encoder, mappers=mappers, with_generator=with_generator, plugins=plugins, opset=opset,
            quiet=quiet,
        )
        manifest = run_export(opts)
    except (ExportFailed, ExportError, StyleError, ValueError, FileNotFoundError) as e:
        typer.secho(f"cptr-export: error: {e}", fg=typer.colors.RED, err=True)
        if had_repository:  # the export is swapped in only when complete
            typer.secho(f"(the previous contents of {out} are unchanged)", err=True)
        raise typer.Exit(1) from None
    if not quiet:
        typer.echo(f"exported style {manifest['style']!r} to {out} ({', '.join(manifest['models'])})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
