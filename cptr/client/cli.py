"""``cptr client``: call a running CPTR server from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.client import BadRequestError, CartoonClient, CartoonError
from cptr.client.client import decode_output
from cptr.contracts import public_models
from cptr.imaging import grid, image_format, save_image
from cptr.io import atomic_write_bytes

app = typer.Typer(
    help="Call a running CPTR server (start one with: cptr serve).\n\n"
    "Every command takes --url HOST:PORT and --protocol grpc|http.\n\n"
    "Examples:\n\n"
    "  cptr client cartoonize photo.jpg -o cartoon.png --style demo\n"
    "  cptr client generate --seeds 1-8 -o grid.png --mix 42:4\n"
    "  cptr client styles",
    add_completion=False,
)

URL_HELP = "Server address host:port (default: 127.0.0.1:8001 for gRPC, 127.0.0.1:8000 for HTTP)."


def _client(url: str | None, protocol: str, timeout: float):  # noqa: ANN202

    if protocol not in ("grpc", "http"):
        raise typer.BadParameter("use grpc or http", param_hint="--protocol")
    return CartoonClient(url, protocol, timeout_s=timeout)  # type: ignore[arg-type]


def _fail(e: Exception, about: Path | None = None) -> typer.Exit:
    """Exit 1 with the error; ``about`` names the file a refused request was about."""

    where = f"{about}: " if about is not None and isinstance(e, BadRequestError) else ""
    typer.echo(f"cptr client: {type(e).__name__}: {where}{e}", err=True)
    return typer.Exit(1)


def _check_out(out: Path) -> str:
    """The picture format of ``--out`` from its suffix, checked before the server is asked."""

    try:
        return image_format(out)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="'--out' / '-o'") from None


@app.command()
def cartoonize(
    photo: Path = typer.Argument(..., exists=True, dir_okay=False, help="Photo (JPEG, PNG, WebP...)."),
    out: Path = typer.Option(Path("cartoon.png"), "--out", "-o", help="Picture to write: .png, .jpg or .webp."),
    style: str = typer.Option("demo", help="Style served by the server."),
    prompt: str | None = typer.Option(None, help="Text edit (a mapper exported for this style), e.g. angry."),
    paste_back: bool = typer.Option(False, "--paste-back", help="Paste the cartoon face back into the photo."),
    url: str | None = typer.Option(None, help=URL_HELP),
    protocol: str = typer.Option("grpc", help="grpc or http."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the answer."),
) -> None:
    """Turn the face in a photo into a cartoon.

    The server finds and aligns the face, encodes it and renders it in the style.

    Examples:

      cptr client cartoonize photo.jpg -o cartoon.png --style demo
      cptr client cartoonize photo.jpg -o cartoon.jpg --prompt smile --paste-back
      cptr client cartoonize photo.jpg --url 127.0.0.1:8000 --protocol http
    """

    fmt = _check_out(out)
    try:
        with _client(url, protocol, timeout) as client:
            png = client.cartoonize(photo, style=style, prompt=prompt, paste_back=paste_back, output="png")
    except (CartoonError, ValueError) as e:
        raise _fail(e, photo) from None

    picture = decode_output(png, "pil")
    if fmt == "PNG":
        atomic_write_bytes(out, png)  # type: ignore[arg-type]
    else:
        save_image(picture, out)  # type: ignore[arg-type]
    what = "the photo with the cartoon pasted back" if paste_back else "cartoon"
    grey = ", grey as the photo" if picture.mode == "RGB" and _is_grey(picture) else ""
    typer.echo(f"wrote {out}: {what}, {picture.size[0]}x{picture.size[1]} px{grey}")


def _is_grey(picture) -> bool:
    import numpy as np

    a = np.asarray(picture)
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


@app.command()
def generate(
    seeds: str = typer.Option("1-8", help="Seeds: numbers and ranges, e.g. 1-8,12."),
    out: Path = typer.Option(Path("grid.png"), "--out", "-o", help="Grid picture to write: .png, .jpg or .webp."),
    style: str = typer.Option("demo", help="Style served by the server."),
    mix: str | None = typer.Option(
        None, help="Style mixing SEED:LAYER: W+ entries from LAYER on come from SEED (LAYER below the style's W+ size)."
    ),
    cols: int = typer.Option(8, min=1, help="Faces per row."),
    url: str | None = typer.Option(None, help=URL_HELP),
    protocol: str = typer.Option("grpc", help="grpc or http."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the answer."),
) -> None:
    """Random cartoon faces from seeds, as one grid picture.

    The same seed gives the same face on every machine.

    Examples:

      cptr client generate --seeds 1-8 -o grid.png
      cptr client generate --seeds 1-4,9 -o mixed.jpg --mix 42:4
    """
    import numpy as np

    _check_out(out)
    try:
        with _client(url, protocol, timeout) as client:
            faces = client.generate(seeds, style=style, mix=mix, output="array")
    except (CartoonError, ValueError) as e:
        raise _fail(e) from None
    sheet = grid(np.stack(faces), cols=min(cols, len(faces)))
    save_image(sheet, out)
    h, w = np.asarray(sheet).shape[:2]
    typer.echo(f"wrote {out}: {len(faces)} faces of {faces[0].shape[1]}x{faces[0].shape[0]} px in a {w}x{h} px grid")


@app.command()
def styles(
    url: str | None = typer.Option(None, help=URL_HELP),
    protocol: str = typer.Option("grpc", help="grpc or http."),
) -> None:
    """List the styles and models the server has ready.

    Prints the generate_STYLE and cartoonize_STYLE[_PROMPT] models, one a line.

    Examples:

      cptr client styles
      cptr client styles --url 127.0.0.1:8000 --protocol http
    """

    try:
        with _client(url, protocol, 30.0) as client:
            models = client.models()
    except CartoonError as e:
        raise _fail(e) from None
    for m in public_models(models):
        typer.echo(m)
