"""Procedural-face rendering speed: renders/s on one core, per domain and size.

    .venv/bin/python benchmarks/render_speed.py --n 500 --sizes 64,256

One process, one thread (``cptr-train render`` runs one process per core on top of this).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cptr.data.faces import DOMAINS, render_face  # noqa: E402
from cptr.options import option, positive_ints, script_app  # noqa: E402


@dataclass
class RenderSpeedOptions:
    """The options of ``benchmarks/render_speed.py`` (each field one option: :mod:`cptr.options`)."""

    n: int = option(500, min=1, help="Renders per domain and size.")
    sizes: str = option("64,256", parse=positive_ints("--sizes", "64,256"), help="Image sizes to render, separated by commas.")


def main(a: RenderSpeedOptions) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print("| domain | size | renders/s (1 core) | n |\n|---|---|---|---|")
    for size in (int(s) for s in a.sizes.split(",")):
        for domain in DOMAINS:
            render_face(0, domain, size)  # warm-up (palette, grids)
            t0 = time.perf_counter()
            for seed in range(1, a.n + 1):
                render_face(seed, domain, size)
            dt = time.perf_counter() - t0
            print(f"| {domain} | {size} | {a.n / dt:.0f} | {a.n} |", flush=True)


if __name__ == "__main__":
    script_app(RenderSpeedOptions, main, __doc__)(prog_name="python benchmarks/render_speed.py")
