"""The ``cptr`` command: styles, serving, client and demo in one place."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.demo.run import run_demo
from cptr.helptext import reflow_app

app = typer.Typer(
    help="CPTR: cartoon portrait style transfer on StyleGAN2.\n\n"
    "Export a style to a Triton model repository (cptr-export), serve it, call it.\n\n"
    "Examples:\n\n  cptr demo\n  cptr styles list\n  cptr serve --model-repository triton_repo\n"
    "  cptr client cartoonize photo.jpg -o cartoon.png",
    add_completion=False,
)


def _help_if_no_command(ctx: typer.Context) -> None:
    """A command group called alone prints its help and exits 0 (click's own answer is a usage error, 2)."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()  # Rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit(0)


_GROUP = {"invoke_without_command": True, "no_args_is_help": False, "callback": _help_if_no_command}
app.add_typer(__import__("cptr.styles.cli", fromlist=["app"]).app, name="styles", **_GROUP)
app.command("serve")(__import__("cptr.serving.cli", fromlist=["serve"]).serve)
app.command("ui")(__import__("cptr.ui.cli", fromlist=["ui"]).ui)
app.add_typer(__import__("cptr.client.cli", fromlist=["app"]).app, name="client", **_GROUP)
app.command("edit")(__import__("cptr.editing.cli", fromlist=["edit"]).edit)
app.add_typer(__import__("cptr.deploy.cli", fromlist=["app"]).app, name="deploy", **_GROUP)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """CPTR: cartoon portrait style transfer on StyleGAN2."""
    _help_if_no_command(ctx)


@app.command()
def demo(
    out: Path = typer.Option(Path("cptr-demo"), "--out", "-o", help="Folder for the repository, the server log and the sheet."),
    alpha: float | None = typer.Option(
        None, "--alpha", min=0.0, max=1.0, help="Blend weight of the cartoon generator in the served style [default: the demo style's own]."
    ),
) -> None:
    """The whole product on the shipped demo models: export, serve, cartoonize, generate, edit, sheet.

    Exports the demo style, starts the real Triton server, cartoonizes held-out photo-domain faces and
    scikit-image's astronaut (also pasted back, and with the 'smile' edit), generates faces with
    style mixing, sweeps alpha, writes one labelled contact sheet and stops the server.

    Example: cptr demo --out cptr-demo
    """

    try:
        res = run_demo(out, alpha=alpha, log=typer.echo)
    except FileNotFoundError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for note in res.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"done in {res.seconds:.0f} s; contact sheet: {res.sheet}")


reflow_app(app)  # help paragraphs whole at any width (cptr.helptext)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
