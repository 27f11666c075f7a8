"""``cptr-export``: parse the options, run :func:`cptr.export.style.export_style`, print the result.

The work (blending, the catalogue's stages, engines, the repository, the manifest) is the library
call's; this module only turns options into :class:`~cptr.export.style.ExportOptions` and errors
into a message and exit status 1. ``--server`` and ``--remove`` call :mod:`cptr.triton`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.export.onnx import ExportError
from cptr.export.style import ExportFailed, ExportOptions, export_style, run_export
from cptr.options import options_command
from cptr.styles import StyleError
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
@options_command(ExportOptions)
def export(
    opts: ExportOptions,
    server: str | None = typer.Option(
        None,
        "--server",
        help="A Triton server (host:port of its HTTP endpoint) serving --out with explicit model control, as cptr serve does: it loads the new versions at once, then drops the old ones when their requests finish. Without it, cptr serve picks the change up within a second.",
    ),
    remove: bool = typer.Option(False, "--remove", help="Take --style out of --out (and out of --server) instead of exporting it."),
) -> None:
    out, quiet = opts.out, opts.quiet
    if remove:
        _remove(out, opts.style, server)
        return
    had_repository = out.exists()
    try:
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
