"""``cptr styles``: list, show, add and remove styles of the registry (:mod:`cptr.styles`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cptr.styles import (
    DEFAULT_ALPHA,
    StyleError,
    add_style,
    get_style,
    list_styles,
    no_encoder_hint,
    parse_mapper_options,
    registry_path,
    remove_style,
)

app = typer.Typer(
    help="Manage the style registry ($CPTR_HOME/styles.json).\n\n"
    "A style is a source and a fine-tuned generator, their blend, and optional encoder and text mappers.\n\n"
    "Examples:\n\n  cptr styles list\n"
    "  cptr styles add webtoon --source ffhq256.pt --target webtoon.pt --alpha 0.7\n"
    "  cptr styles show webtoon\n  cptr styles remove webtoon",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command("list")
def _list_cmd() -> None:
    """List the styles (built-in demo first).

    One line per style: its name, default blend, what an export of it serves
    (generate; cartoonize needs an encoder; edit:PROMPT per text mapper) and
    its checkpoints.

    Examples:

      cptr styles list
    """
    try:
        styles = list_styles()
    except StyleError as e:
        _fail(e)
    for s in styles:
        extra = f" swap_res={s.swap_res}" if s.swap_res else ""
        can = "serves=" + ",".join(s.capabilities) + ("" if s.encoder else " (no encoder: no cartoonize)")
        typer.echo(
            f"{s.name:16s} alpha={s.alpha:g}{extra} {can}  {'(built-in) ' if s.builtin else ''}{s.target if not s.builtin else s.description}"
        )


@app.command("show")
def _show_cmd(name: str = typer.Argument(..., help="Style name.")) -> None:
    """Print one style as JSON.

    The JSON has the checkpoints, blend defaults, encoder and mappers cptr-export uses.

    Examples:

      cptr styles show demo
    """
    try:
        s = get_style(name)
    except StyleError as e:
        _fail(e)
    typer.echo(json.dumps({"name": s.name, **s.to_json()}, indent=2))


@app.command("add")
def _add_cmd(
    name: str = typer.Argument(..., help="New style name (lower-case letters, digits, '_' or '-')."),
    source: Path = typer.Option(..., "--source", help="Source generator checkpoint (rosinality .pt or NVlabs .pkl)."),
    target: Path = typer.Option(..., "--target", help="Fine-tuned (cartoon) generator checkpoint."),
    alpha: float = typer.Option(DEFAULT_ALPHA, min=0.0, max=1.0, help="Default blend weight of the target."),
    swap_res: int | None = typer.Option(None, "--swap-res", help="Layers below this resolution come from the source."),
    blend_width: float | None = typer.Option(None, "--blend-width", help="Sigmoid width (octaves) of the swap."),
    inject_k: int = typer.Option(0, "--inject-k", min=0, help="W+ entries kept from the unedited latent after a mapper edit."),
    encoder: Path | None = typer.Option(None, "--encoder", help="Image -> W+ encoder checkpoint."),
    mapper: list[str] = typer.Option([], "--mapper", help="Text mapper as PROMPT=PATH (repeatable)."),
    description: str = typer.Option("", help="Free text shown by `cptr styles list`."),
    copy: bool = typer.Option(False, "--copy", help="Copy the checkpoints into the store."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing style of that name."),
) -> None:
    """Register a style after checking that both generators load and match.

    cptr-export --style NAME then exports it.

    Examples:

      cptr styles add webtoon --source ffhq256.pt --target webtoon.pt --alpha 0.7
      cptr styles add toon --source a.pt --target b.pt --swap-res 16 --copy
      cptr styles add toon --source a.pt --target b.pt --encoder e4e.pt \\
          --mapper smile=smile.pt --replace
    """
    try:
        info = add_style(
            name,
            source,
            target,
            alpha=alpha,
            swap_res=swap_res,
            blend_width=blend_width,
            inject_k=inject_k,
            encoder=encoder,
            mappers=parse_mapper_options(mapper),
            description=description,
            copy=copy,
            replace=replace,
        )
    except StyleError as e:
        _fail(e)
    typer.echo(f"registered style {info.name!r} in {registry_path()}; an export serves: {', '.join(info.capabilities)}")
    if not info.encoder:
        typer.secho(f"warning: {no_encoder_hint(info.name)}", fg=typer.colors.YELLOW, err=True)


@app.command("remove")
def _remove_cmd(name: str = typer.Argument(..., help="Style to unregister.")) -> None:
    """Unregister a style.

    Copies made with --copy are deleted; the files it was registered from are left alone.

    Examples:

      cptr styles remove webtoon
    """
    try:
        remove_style(name)
    except StyleError as e:
        _fail(e)
    typer.echo(f"removed style {name!r}")
