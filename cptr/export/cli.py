"""``cptr-export``: parse the options, run :func:`cptr.export.style.export_style`, print the result.

The work (blending, the catalogue's stages, engines, the repository, the manifest) is the library
call's; this module only turns options into :class:`~cptr.export.style.ExportOptions` and errors
into a message and exit status 1. ``--server`` and ``--remove`` call :mod:`cptr.triton`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.contracts import DEFAULT_TRUNCATION
from cptr.engines.openvino import DEFAULT_MIN_PSNR, MIN_PSNR_FLOOR
from cptr.export.onnx import ExportError
from cptr.export.style import ExportFailed, ExportOptions, export_style, run_export
from cptr.styles import StyleError
from cptr.styles.cli import parse_mapper_options
from cptr.triton import ControlError, LayoutError, sync
from cptr.triton import remove as remove_style

__all__ = ["ExportFailed", "ExportOptions", "app", "export_style", "main", "run_export"]

EXAMPLES = """
Examples:

\b
  # the embedded demo style -> triton_repo/ (what `make demo` runs)
  cptr-export --style demo
  # a registered style (cptr styles add ...), fp16 graphs
  cptr-export --style webtoon --alpha 0.7 --swap-res 16 --precision fp16 \\
      --out /models/webtoon
  # checkpoints directly, soft layer swap
  cptr-export --source ffhq256.pt --target webtoon.pt --style webtoon \\
      --swap-res 32 --blend-width 1.0
  # photo -> cartoon with a text edit, for Triton's native onnxruntime backend
  cptr-export --style webtoon --encoder e4e.pt --mapper smile=smile.pt \\
      --inject-k 4 --backend native
  # CPU serving with OpenVINO in bf16 (fp32 where the CPU has no bf16)
  cptr-export --style demo --engine openvino --precision bf16
  # the same with models compiled for batch 1 and 4 (fixed shapes run faster)
  cptr-export --style demo --engine openvino --precision bf16 \\
      --ov-static-batch 1,4
  # into the repository a server is serving: loaded at once, no request fails
  cptr-export --style webtoon --alpha 0.9 --server 127.0.0.1:8000
  # take a style out of the repository (and out of the server)
  cptr-export --style webtoon --remove --server 127.0.0.1:8000
  # the same for Triton's openvino backend, tuned for throughput
  cptr-export --style demo --engine openvino --precision bf16 \\
      --backend native --ov-hint throughput --ov-streams 2
"""

# --------------------------------------------------------------------------- Typer app

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help="Export a style (blended generator, encoder, mappers) to verified ONNX models in a Triton repository.\n" + EXAMPLES)
def export(
    style: str | None = typer.Option(
        None, "--style", help="Registered style name (default: the embedded 'demo'); with --source/--target: the name to give it."
    ),
    source: Path | None = typer.Option(None, "--source", help="Source (real-face) generator checkpoint, instead of a registered style."),
    target: Path | None = typer.Option(None, "--target", help="Fine-tuned (cartoon) generator checkpoint."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, max=1.0, help="Blend weight of the target (default: the style's)."),
    swap_res: int | None = typer.Option(None, "--swap-res", help="Layers below this resolution come from the source (Toonify)."),
    blend_width: float | None = typer.Option(None, "--blend-width", help="Sigmoid transition width around --swap-res, in octaves."),
    inject_k: int | None = typer.Option(
        None, "--inject-k", min=0, help="W+ entries a mapper edit leaves untouched (FreezeSG latent injection)."
    ),
    truncation: float = typer.Option(
        DEFAULT_TRUNCATION,
        "--truncation",
        min=0.0,
        max=1.0,
        help="Truncation psi baked into the mapping graph as the default of its optional 'truncation' input (Triton uses it; ONNX Runtime callers may feed their own).",
    ),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32 or fp16 (fp16 computes inside; inputs/outputs stay fp32); with --engine openvino: fp32 or bf16."
    ),
    batch_max: int = typer.Option(8, "--batch-max", min=1, help="Largest batch Triton sends to one model."),
    out: Path = typer.Option(
        Path("triton_repo"),
        "--out",
        "-o",
        help="Model repository to export into. It may hold other styles and be served: the style goes in as new model versions, complete or not at all.",
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        help="A Triton server (host:port of its HTTP endpoint) serving --out with explicit model control, as cptr serve does: it loads the new versions at once, then drops the old ones when their requests finish. Without it, cptr serve picks the change up within a second.",
    ),
    remove: bool = typer.Option(False, "--remove", help="Take --style out of --out (and out of --server) instead of exporting it."),
    backend: str = typer.Option(
        "python", "--backend", help="Repository flavour: python (bundled tritonserver) or native (onnxruntime/tensorrt backends)."
    ),
    engine: str = typer.Option(
        "onnx", "--engine", help="onnx, trt (TensorRT plans), torch (AOTInductor packages) or openvino (OpenVINO IR, CPU)."
    ),
    encoder: Path | None = typer.Option(None, "--encoder", help="Image -> W+ encoder checkpoint (overrides the style's)."),
    mapper: list[str] = typer.Option([], "--mapper", help="Text mapper PROMPT=PATH (repeatable; adds to the style's)."),
    with_generator: bool = typer.Option(False, "--with-generator", help="Also export z -> image as one graph (generator.onnx)."),
    plugins: bool = typer.Option(
        False,
        "--plugins",
        help="Emit upfirdn2d / bias-act as TensorRT plugin nodes (UpFirDn2d, FusedBiasLeakyReLU, namespace cptr); build the engine with libcptr_trt_plugins.so.",
    ),
    opset: int = typer.Option(17, "--opset", min=17, help="ONNX opset."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check every graph in ONNX Runtime against PyTorch (batch 1 and 3)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ov_hint: str = typer.Option(
        "latency",
        "--ov-hint",
        help="--engine openvino: performance hint, latency (one request on every core) or throughput (parallel streams).",
    ),
    ov_streams: str | None = typer.Option(
        None, "--ov-streams", help="--engine openvino: streams, a number or auto (default: the hint's choice)."
    ),
    ov_threads: int | None = typer.Option(
        None, "--ov-threads", min=1, help="--engine openvino: inference threads shared by the streams (default: one per physical core)."
    ),
    ov_static_batch: str = typer.Option(
        "",
        "--ov-static-batch",
        help="--engine openvino, python flavour: batch sizes that each get a model compiled for that batch, e.g. 1 or 1,4 (faster: 12-19% in bf16 on the 256 px synthesis; costs a compile each at server start); other sizes run on the dynamic-batch model.",
    ),
    ov_min_psnr: float = typer.Option(
        DEFAULT_MIN_PSNR,
        "--ov-min-psnr",
        help=f"--engine openvino --precision bf16: the least PSNR in dB of every stage's images against fp32 PyTorch (at least {MIN_PSNR_FLOOR:g}).",
    ),
) -> None:
    if remove:
        _remove(out, style, server)
        return
    had_repository = out.exists()
    try:
        mappers = {k: Path(v) for k, v in parse_mapper_options(mapper).items()}
        opts = ExportOptions(
            out=out,
            style=style,
            source=source,
            target=target,
            alpha=alpha,
            swap_res=swap_res,
            blend_width=blend_width,
            inject_k=inject_k,
            truncation=truncation,
            precision=precision,
            batch_max=batch_max,
            backend=backend,
            engine=engine,
            verify=verify,
            encoder=encoder,
            mappers=mappers,
            with_generator=with_generator,
            plugins=plugins,
            opset=opset,
            quiet=quiet,
            ov_hint=ov_hint,
            ov_streams=ov_streams,
            ov_threads=ov_threads,
            ov_min_psnr=ov_min_psnr,
            ov_static_batches=ov_static_batch,
        )
        manifest = export_style(opts)
    except (ExportFailed, ExportError, StyleError, ValueError, FileNotFoundError) as e:
        typer.secho(f"cptr-export: error: {e}", fg=typer.colors.RED, err=True)
        if had_repository:  # the style goes in only when complete
            typer.secho(f"(the repository {out} is unchanged)", err=True)
        raise typer.Exit(1) from None
    for note in manifest.notes if quiet else ():  # shown by the progress output otherwise
        typer.secho(f"cptr-export: note: {note}", fg=typer.colors.YELLOW, err=True)
    if not quiet:
        typer.echo(f"exported style {manifest.style!r} to {out} ({', '.join(manifest.models)})")
    _switch(out, server, quiet)


def _switch(out: Path, server: str | None, quiet: bool) -> None:
    """Have ``server`` load what ``out`` now holds; say what a server without --server does."""
    if server is None:
        if not quiet:
            typer.echo(f"a `cptr serve -m {out}` running now loads it within a second; another tritonserver needs --server or a restart")
        return
    try:
        done = sync(server, out)
    except ControlError as e:
        typer.secho(f"cptr-export: the repository is written, but the server did not switch: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if not quiet:
        typer.echo(f"server {server}: {done.describe()}")


def _remove(out: Path, style: str | None, server: str | None) -> None:
    if not style:
        typer.secho("cptr-export: error: --remove needs --style NAME", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        gone = remove_style(out, style)
    except (LayoutError, FileNotFoundError) as e:
        typer.secho(f"cptr-export: error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed style {style!r} from {out} ({len(gone.deleted)} model folders deleted)")
    _switch(out, server, quiet=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
