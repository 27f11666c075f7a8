"""Face-alignment latency: detect + landmarks + FFHQ warp on a 1024 px photo (CPU).

Example:
    .venv/bin/python benchmarks/align_bench.py --runs 200
    .venv/bin/python benchmarks/align_bench.py --backend dlib --runs 50 --photo grace

Prints a Markdown table (median and p95 in milliseconds over --runs runs after --warmup runs).
Photos: scikit-image's astronaut (upscaled to 1024x1024) or matplotlib's Grace Hopper (longest
side 1024), or any image file.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cptr.align import align_face, detect_landmarks, load_image, paste_back  # noqa: E402
from cptr.options import option, script_app  # noqa: E402


@dataclass
class AlignBenchOptions:
    """The options of ``benchmarks/align_bench.py`` (each field one option: :mod:`cptr.options`)."""

    backend: Literal["mediapipe", "dlib"] = option("mediapipe", help="Face detector and landmark model.")
    photo: str = option("astronaut", help="astronaut, grace, or a path to an image file.")
    longest: int = option(1024, min=1, help="Resize the photo to this longest side (pixels).")
    size: int = option(256, min=1, help="Aligned crop size (pixels).")
    runs: int = option(200, min=1, help="Timed runs per stage (median and p95 over these).")
    warmup: int = option(10, min=0, help="Untimed runs per stage before the timed ones.")


def photo(name: str, longest: int) -> np.ndarray:
    if name == "astronaut":
        from skimage import data  # optional (the demo extra): only this photo needs it

        img = data.astronaut()
    elif name == "grace":
        import matplotlib  # optional (the bench extra): only this photo needs it

        img = load_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    else:
        img = load_image(name)
    h, w = img.shape[:2]
    s = longest / max(h, w)
    return np.ascontiguousarray(cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC))


def measure(fn: Callable[[], object], runs: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(np.ceil(0.95 * len(times))) - 1)]


def main(args: AlignBenchOptions) -> None:
    img = photo(args.photo, args.longest)
    jpeg = io.BytesIO()
    Image.fromarray(img).save(jpeg, format="JPEG", quality=92)
    face = detect_landmarks(img, backend=args.backend)[0]
    aligned = align_face(img, face, size=args.size)

    def detect_and_align() -> None:
        align_face(img, detect_landmarks(img, backend=args.backend)[0], size=args.size)

    rows = [
        ("detect + landmarks + align (target < 30 ms)", detect_and_align),
        ("detect_landmarks", lambda: detect_landmarks(img, backend=args.backend)),
        ("align_face", lambda: align_face(img, face, size=args.size)),
        ("paste_back", lambda: paste_back(img, aligned.crop, aligned)),
        ("load_image (JPEG decode)", lambda: load_image(jpeg.getvalue())),
    ]
    h, w = img.shape[:2]
    print(
        f"photo {args.photo} {w}x{h}, backend {args.backend}, crop {args.size}, runs {args.runs} "
        f"(warm-up {args.warmup}), CPU: {platform.processor() or platform.machine()} x{os.cpu_count()}, "
        f"threads: cv2 {cv2.getNumThreads()}, Pillow blocks_max {Image.core.get_blocks_max()} (PILLOW_BLOCKS_MAX)"
    )
    print("\n| stage | median ms | p95 ms |\n|---|---:|---:|")
    for name, fn in rows:
        med, p95 = measure(fn, args.runs, args.warmup)
        print(f"| {name} | {med:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    script_app(AlignBenchOptions, main, __doc__)(prog_name="python benchmarks/align_bench.py")
