"""``cptr-train render``: procedural-face data sets (registered on the ``cptr-train`` app)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def render(
    domain: str = typer.Option(..., "--domain", help="photo (shaded, textured, soft focus) or cartoon (flat fills, ink outlines, big eyes)."),
    n: int = typer.Option(..., "--n", min=1, help="Number of faces."),
    out: Path = typer.Option(..., "--out", help="Folder of PNGs, or an LMDB when the name ends in .lmdb (replaced atomically)."),
    size: int = typer.Option(64, "--size", min=16, max=1024, help="Side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Face i is the face of seed SEED + i (the same face in both domains)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes [default: one per CPU]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render a labelled data set of procedural faces (no download): the data CPTR's demo models train on.

    Examples:

      cptr-train render --domain photo --n 20000 --size 64 --out data/photo

      cptr-train render --domain cartoon --n 20000 --size 64 --out data/cartoon.lmdb

    Each image comes with its attributes (yaw, roll, skin tone, hair colour, smile, ...) in labels.csv.
    """
    from cptr.data.render import write_renders

    try:
        res = write_renders(out, domain, n, size=size, seed=seed, workers=workers, progress=not quiet)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not quiet:
        typer.echo(f"wrote {res.count} {domain} faces ({size} px, seeds {seed}..{seed + n - 1}) to {res.path}")
