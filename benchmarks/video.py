#!/usr/bin/env python
"""Video through the served pipeline: flicker, yaw followed, and throughput (:mod:`cptr.client.video`).

    python benchmarks/video.py [--style demo] [--frames 72] [--throughput-seconds 10] [--workdir DIR] [--strip PNG]

On the test clips of :mod:`cptr.data.clips` (made here, nothing downloaded), through a real tritonserver on
loopback serving ``cptr-export --style demo``:

* **flicker**: a camera panning, zooming and turning over a photo (the astronaut; the group photo): inside the face
  box, the output's mean absolute frame-to-frame change over the input's (:func:`cptr.bench.video.flicker_ratio`),
  smoothing off (0) and on (1, the default);
* **yaw followed**: a rendered head turning left and right: the face mesh's yaw of each output frame against the
  input frame's (Pearson correlation), smoothing off and on; the same for the mouth opening of a smile clip;
* **throughput**: frames per second of ``cptr client cartoonize-video`` on a 10 s 854x480 clip at 30 fps (the camera
  over the astronaut), served by ONNX Runtime and by OpenVINO bf16 (``cptr-export --engine openvino --precision
  bf16``), with 1 and 4 requests in flight.

Writes ``benchmarks/results/video-<time>.json`` (figures, machine, command) and, with ``--strip``, a strip of frames
(input above, cartoon below) of the camera-move and head-turn clips.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cptr.bench.machine import machine_info  # noqa: E402
from cptr.bench.video import flicker_ratio, yaw_series  # noqa: E402
from cptr.client import CartoonClient  # noqa: E402
from cptr.client.video import VideoReport, cartoonize_video, read_frames, served_stages, write_video  # noqa: E402
from cptr.data import clips  # noqa: E402
from cptr.data.structure import FEATURES, FaceMesh, mesh_geometry, paired_correlation  # noqa: E402
from cptr.export.style import ExportOptions, export_style  # noqa: E402
from cptr.imaging import grid, save_image  # noqa: E402
from cptr.io import atomic_write_text  # noqa: E402
from cptr.options import option, script_app  # noqa: E402
from cptr.serving.server import TritonServer  # noqa: E402

FPS = 24
HEAD_SEED = 11  # a render whose face the demo models keep (its head turns through yaw -0.8 .. 0.8)


@dataclass
class VideoBenchOptions:
    """The options of ``benchmarks/video.py`` (each field one option: :mod:`cptr.options`)."""

    style: str = option("demo", help="Registered style to export and serve (cptr-export --style).")
    frames: int = option(72, min=2, help=f"Frames of each quality clip (at {FPS} fps).")
    throughput_seconds: float = option(10.0, min=0.0, help="Length of the 480p clip in seconds (0: skip throughput).")
    workdir: Path | None = option(None, help="Where the clips, repositories and outputs go (default: a temporary folder).")
    strip: Path | None = option(None, help="Write the strip of frames here (PNG).")
    out: Path = option(
        ROOT / "benchmarks" / "results", show_default=False, help="Folder for the video-<time>.json results (default: benchmarks/results)."
    )


def first_boxes(report: VideoReport) -> list:
    return [b[0] if b else None for b in report.boxes]


def run(src: Path, out: Path, client: CartoonClient, style: str, **kw) -> tuple[VideoReport, list[np.ndarray]]:
    report = cartoonize_video(src, out, served_stages(client, style), progress=False, **kw)
    return report, list(read_frames(out))


def mouth_series(frames: list[np.ndarray], boxes: list, mesh: FaceMesh) -> np.ndarray:
    out = np.full(len(frames), np.nan)
    for i, (f, b) in enumerate(zip(frames, boxes)):
        if b is None:
            continue
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        side = int(max(x1 - x0, y1 - y0) * 1.8)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        crop = np.ascontiguousarray(f[max(cy - side // 2, 0) : cy + side // 2, max(cx - side // 2, 0) : cx + side // 2])
        pts = mesh.points(crop)
        if pts is not None:
            out[i] = mesh_geometry(pts, float(max(crop.shape[:2])))[FEATURES.index("mouth")]
    return out


def quality(client: CartoonClient, style: str, work: Path, n: int, log) -> tuple[dict, dict]:
    """Flicker and structure figures, smoothing off and on; and the frames for the strip."""
    mesh = FaceMesh()
    made = {
        "camera_astronaut": (clips.camera_move(clips.astronaut(), n, (320, 240), center=clips.ASTRONAUT_CENTER), None),
        "camera_group": (clips.camera_move(clips.group_photo(), n, (560, 350), pan=0.02, zoom=1.06, degrees=3.0), None),
        "head_turn": clips.head_turn(HEAD_SEED, n, 256),
        "smile": clips.smile(HEAD_SEED, n, 256),
    }
    figures: dict = {}
    strips: dict = {}
    for name, (frames, _param) in made.items():
        src = write_video(work / f"{name}.mp4", frames, FPS, audio=clips.tone(len(frames) / FPS))
        frames_in = list(read_frames(src))
        for smoothing in (0.0, 1.0):
            t0 = time.perf_counter()
            report, frames_out = run(src, work / f"{name}_s{smoothing:g}.mp4", client, style, smoothing=smoothing)
            boxes = first_boxes(report)
            row = {"frames": report.frames, "with_faces": report.frames_with_faces, "tracks": report.tracks}
            row["flicker_ratio"] = round(flicker_ratio(frames_in, frames_out, boxes), 3)
            if name in ("head_turn", "smile"):
                series = yaw_series if name == "head_turn" else mouth_series
                a, b = series(frames_in, boxes, mesh), series(frames_out, boxes, mesh)
                r, k = paired_correlation(a, b)
                row["yaw_corr" if name == "head_turn" else "mouth_corr"] = round(r, 3)
                row["mesh_frames"] = k
            row["seconds"] = round(time.perf_counter() - t0, 1)
            figures.setdefault(name, {})[f"smoothing_{smoothing:g}"] = row
            log(f"{name:17s} smoothing {smoothing:g}: {row}")
            if smoothing == 1.0:
                strips[name] = (frames_in, frames_out)
    return figures, strips


def throughput(style: str, work: Path, seconds: float, log) -> list[dict]:
    """Frames per second on a 480p clip: ONNX Runtime and OpenVINO bf16 servers, window 1 and 4."""
    n = int(round(seconds * 30))
    frames = clips.camera_move(clips.astronaut(), n, (854, 480), center=clips.ASTRONAUT_CENTER, zoom=1.1)
    src = write_video(work / "throughput_480p.mp4", frames, 30, audio=clips.tone(seconds))
    rows = []
    for engine, options in (("onnxruntime fp32", {}), ("openvino bf16", {"engine": "openvino", "precision": "bf16"})):
        repo = work / f"repo-{options.get('engine', 'onnx')}"
        export_style(ExportOptions(out=repo, style=style, quiet=True, verify=False, **options))  # type: ignore[arg-type]
        with TritonServer(repo) as server, CartoonClient(server.grpc_url, timeout_s=300) as client:
            stages = served_stages(client, style)
            cartoonize_video(src, work / "warmup.mp4", stages, progress=False, window=2)  # warm the sessions
            for window in (1, 4):
                report = cartoonize_video(src, work / f"out-{window}.mp4", stages, window=window, progress=False)
                rows.append({"engine": engine, "window": window, "frames": report.frames, "seconds": round(report.seconds, 2),
                             "fps": round(report.fps, 2), "faces": report.faces, "step_seconds": report.step_seconds})  # fmt: skip
                log(f"throughput {engine}, window {window}: {rows[-1]}")
    return rows


def strip(pairs: dict, path: Path, per_clip: int = 6, height: int = 128) -> None:
    """Input frames above, cartoon frames below: the camera over the astronaut, over the group, then the head turn
    (smoothing on)."""
    rows = []
    for name in ("camera_astronaut", "camera_group", "head_turn"):
        frames_in, frames_out = pairs[name]
        pick = np.linspace(0, len(frames_in) - 1, per_clip).round().astype(int)

        def small(f: np.ndarray) -> np.ndarray:
            return np.asarray(Image.fromarray(f).resize((height * f.shape[1] // f.shape[0], height), Image.LANCZOS))

        for frames in (frames_in, frames_out):
            rows.append(np.asarray(grid(np.stack([small(frames[i]) for i in pick]), cols=per_clip)))
    width = max(r.shape[1] for r in rows)
    save_image(np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]), path)


def main(args: VideoBenchOptions) -> int:
    """Measure, write the results JSON (and the strip, with ``strip``); returns 0."""
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cptr-video-"))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    started = time.perf_counter()
    repo = work / "repo-quality"
    export_style(ExportOptions(out=repo, style=args.style, quiet=True, verify=False))
    with TritonServer(repo) as server, CartoonClient(server.grpc_url, timeout_s=300) as client:
        figures, pairs = quality(client, args.style, work, args.frames, log)
    if args.strip:
        strip(pairs, args.strip)
        log(f"wrote {args.strip}")
    rows = throughput(args.style, work, args.throughput_seconds, log) if args.throughput_seconds > 0 else []
    result = {
        "benchmark": "video",
        "command": "python " + " ".join(sys.argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "style": args.style,
        "machine": machine_info(),
        "quality": figures,
        "throughput": rows,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"video-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    script_app(VideoBenchOptions, main, __doc__)(prog_name="python benchmarks/video.py")
