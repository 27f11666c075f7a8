"""Procedural-face rendering speed: renders/s on one core, per domain and size.

    .venv/bin/python benchmarks/render_speed.py --n 500 --sizes 64,256

One process, one thread (``cptr-train render`` runs one process per core on top of this).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cptr.data.faces import DOMAINS, render_face  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="renders per domain and size")
    ap.add_argument("--sizes", default="64,256")
    a = ap.parse_args()
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
    main()
