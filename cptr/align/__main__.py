"""``python -m cptr.align --demo docs/align_astronaut.png`` renders the alignment demo picture."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.align.demo import write_demo

app = typer.Typer(add_completion=False)


@app.command()
def main(
    demo: Path = typer.Option(..., help="Write the demo PNG (photo, aligned crop, paste-back) here."),
    backend: str = typer.Option("mediapipe", help="Landmark back-end: mediapipe or dlib."),
) -> None:
    """Align scikit-image's astronaut photo and write a side-by-side demo picture.

    Example: python -m cptr.align --demo docs/align_astronaut.png
    """

    picture = write_demo(demo, backend=backend)
    typer.echo(f"wrote {demo} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    app()
