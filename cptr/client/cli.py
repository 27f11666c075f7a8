"""``cptr client``: call a running CPTR server from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from cptr.client import BadRequestError, CartoonClient, CartoonError
from cptr.client.client import decode_output
from cptr.client.video import DEFAULT_CRF, DEFAULT_SMOOTHING, DEFAULT_WINDOW, VideoError, container_format, probe, served_stages
from cptr.client.video import cartoonize_video as run_video
from cptr.contracts import MAX_FACES_PER_PHOTO, public_models
from cptr.imaging import grid, image_format, save_image
from cptr.io import atomic_write_bytes

app = typer.Typer(
    help="Call a running CPTR server (start one with: cptr serve).\n\n"
    "Every command takes --url HOST:PORT and --protocol grpc|http.\n\n"
    "Examples:\n\n"
    "  cptr client cartoonize photo.jpg -o cartoon.png --style demo\n"
    "  cptr client cartoonize-video clip.mp4 -o clip_toon.mp4 --smoothing 1\n"
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

    where = f"{about}: " if about is not None and isinstance(e, (BadRequestError, VideoError)) else ""
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
    paste_back: bool = typer.Option(False, "--paste-back", help="Write the photo with every face's cartoon pasted back."),
    largest: bool = typer.Option(False, "--largest", help="Only the largest face (the other faces stay as they are)."),
    url: str | None = typer.Option(None, help=URL_HELP),
    protocol: str = typer.Option("grpc", help="grpc or http."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the answer."),
) -> None:
    """Turn every face in a photo into a cartoon.

    The server finds every face above the minimum size (at most 8 faces, largest first), aligns them,
    encodes and renders them in the style as one batch. One face: OUT is its cartoon. Several: OUT is a grid of
    their cartoons, largest first. With --paste-back, OUT is the photo with every cartoon pasted back. --largest
    keeps the largest face only.

    Examples:

      cptr client cartoonize photo.jpg -o cartoon.png --style demo
      cptr client cartoonize group.jpg -o group_toon.jpg --paste-back
      cptr client cartoonize group.jpg -o me.png --largest --prompt smile
      cptr client cartoonize photo.jpg --url 127.0.0.1:8000 --protocol http
    """

    fmt = _check_out(out)
    try:
        with _client(url, protocol, timeout) as client:
            result = client.cartoonize_faces(photo, style=style, prompt=prompt, paste_back=paste_back, output="png", largest=largest)
    except (CartoonError, ValueError) as e:
        raise _fail(e, photo) from None

    faces = [decode_output(png, "pil") for png in result.faces]
    n = f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
    if paste_back:
        png, what = result.composite, f"the photo with {'its largest face' if largest else n} cartoonized"
    elif len(faces) == 1:
        png, what = result.faces[0], "cartoon"
    else:
        png, what = None, f"{n}' cartoons in a grid, largest first"
    picture = decode_output(png, "pil") if png is not None else grid(np.stack([np.asarray(f.convert("RGB")) for f in faces]))
    if fmt == "PNG" and png is not None:
        atomic_write_bytes(out, png)  # type: ignore[arg-type]
    else:
        save_image(picture, out)  # type: ignore[arg-type]
    grey = ", grey as the photo" if picture.mode == "RGB" and _is_grey(picture) else ""
    typer.echo(f"wrote {out}: {what}, {picture.size[0]}x{picture.size[1]} px{grey}")


def _is_grey(picture) -> bool:
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


@app.command("cartoonize-video")
def cartoonize_video(
    video: Path = typer.Argument(..., exists=True, dir_okay=False, help="Video (MP4, MOV, MKV, WebM...)."),
    out: Path = typer.Option(Path("cartoon.mp4"), "--out", "-o", help="Video to write: .mp4, .mov or .mkv (H.264)."),
    style: str = typer.Option("demo", help="Style served by the server."),
    prompt: str | None = typer.Option(None, help="Text edit (a mapper exported for this style), e.g. smile."),
    smoothing: float = typer.Option(
        DEFAULT_SMOOTHING, min=0.0, help="Strength of the smoothing over time of the face landmarks and W+ (One-Euro); 0: off."
    ),
    window: int = typer.Option(DEFAULT_WINDOW, min=1, help="Requests in flight at once."),
    batch: int | None = typer.Option(None, min=1, help="Faces per request [default: the served batch]."),
    max_faces: int = typer.Option(MAX_FACES_PER_PHOTO, min=1, max=MAX_FACES_PER_PHOTO, help="Faces per frame, the largest."),
    crf: int = typer.Option(DEFAULT_CRF, min=0, max=51, help="H.264 quality: 0 lossless, 18 visually lossless, 23 x264's default."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    url: str | None = typer.Option(None, help=URL_HELP),
    protocol: str = typer.Option("grpc", help="grpc or http."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for each answer."),
) -> None:
    """Cartoonize every face of every frame of a video.

    Faces are found and tracked here, frame by frame; their landmarks and latents are smoothed over time so the
    cartoon does not flicker; the server encodes and renders them, several frames per request, --window requests
    at once. The sound, the frame rate, the size and the frame count are kept; a frame without a face is written
    as it was. OUT appears only when the whole video is done (an interrupted run leaves none). Needs PyAV: pip
    install 'cptr[video]'.

    Examples:

      cptr client cartoonize-video clip.mp4 -o clip_toon.mp4
      cptr client cartoonize-video clip.mp4 -o smooth.mp4 --smoothing 2 --window 4
      cptr client cartoonize-video clip.mov -o raw.mkv --smoothing 0
    """

    try:
        container_format(out)
    except VideoError as e:
        raise typer.BadParameter(str(e), param_hint="'--out' / '-o'") from None
    try:
        probe(video)  # a file that is not a video is refused before the server is asked anything
        with _client(url, protocol, timeout) as client:
            stages = served_stages(client, style, prompt)
            report = run_video(
                video, out, stages, smoothing=smoothing, window=window, batch=batch, max_faces=max_faces, crf=crf, progress=not quiet
            )
    except (CartoonError, VideoError, ValueError) as e:
        raise _fail(e, video) from None
    rate = f"{float(report.rate):g} fps" if report.rate else "the input's frame rate"
    sound = ", sound kept" if report.audio else ""
    typer.echo(
        f"wrote {out}: {report.frames} frames ({report.frames_with_faces} with faces, {report.tracks} face track(s)) at "
        f"{report.width}x{report.height} and {rate}{sound}; {report.fps:.1f} frames/s"
    )
