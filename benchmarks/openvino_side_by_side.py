"""The picture of OpenVINO bf16 against fp32 on a real style (``docs/openvino_bf16_vs_fp32.png``).

Rows: ONNX Runtime fp32, OpenVINO fp32, OpenVINO bf16, and |bf16 - fp32| x 10, for faces of the
style's own latents (truncation 0.7), from the synthesis graph ``cptr-export`` writes; the PSNR of each
face against ONNX Runtime fp32 is printed and written into the picture's caption line::

    python benchmarks/openvino_side_by_side.py --model demo --out docs/openvino_bf16_vs_fp32.png
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cptr.bench.openvino_target import openvino_ir  # noqa: E402
from cptr.bench.targets import Context, export_onnx  # noqa: E402
from cptr.bench.workloads import MODELS, benchmark_model, build_workload  # noqa: E402
from cptr.engines.onnxruntime import ort_session  # noqa: E402
from cptr.engines.openvino import EngineConfig, OpenVINOEngine, psnr  # noqa: E402
from cptr.imaging import to_uint8  # noqa: E402
from cptr.io import atomic_path  # noqa: E402
from cptr.options import option, script_app  # noqa: E402
from cptr.training.mapper_train import sample_latents  # noqa: E402


@dataclass
class SideBySideOptions:
    """The options of ``benchmarks/openvino_side_by_side.py`` (each field one option: :mod:`cptr.options`)."""

    model: str = option(
        "demo",
        parse=benchmark_model,
        help=f"Benchmark model: {' | '.join(MODELS)} | PATH to a checkpoint (demo: the shipped trained style).",
    )
    n: int = option(6, min=1, help="Faces (columns of the picture).")
    scale: int = option(2, min=1, help="Pixel zoom of the picture.")
    out: Path = option(Path("docs/openvino_bf16_vs_fp32.png"), help="Where the picture goes (PNG).")


def main(a: SideBySideOptions) -> None:
    work = Path(tempfile.mkdtemp(prefix="cptr-ov-figure-"))
    workload = build_workload("synthesis", a.model)
    ctx = Context(workdir=work)
    onnx_path, xml = export_onnx(workload, "fp32", ctx), openvino_ir(workload, ctx, "synthesis")
    w = sample_latents(workload.generator, a.n, 0.7, seed=0).numpy().astype(np.float32)
    name = workload.inputs[0].name
    ort = ort_session(onnx_path).run(None, {name: w})[0]
    rows = {"ONNX Runtime fp32": ort}
    for precision in ("fp32", "bf16"):
        engine = OpenVINOEngine(xml, EngineConfig(precision))
        rows[f"OpenVINO {engine.precision}"] = engine({name: w})[workload.output.name]
    bf16 = rows.get("OpenVINO bf16")
    if bf16 is None:
        raise SystemExit("this CPU has no bf16 (OpenVINO fell back to fp32): no picture to make")
    scores = [psnr(bf16[i : i + 1], ort[i : i + 1]) for i in range(a.n)]
    print(
        "PSNR bf16 vs fp32 per face (dB): " + ", ".join(f"{s:.1f}" for s in scores) + f"; all faces {psnr(bf16, ort):.1f} dB; "
        f"max abs error {np.abs(bf16 - ort).max():.3f}"
    )
    diff = np.clip(np.abs(bf16 - ort) * 10 - 1, -1, 1)  # |error| x 10 on a black background
    tiles = [np.concatenate(list(to_uint8(torch.from_numpy(x))), axis=1) for x in (*rows.values(), diff)]
    grid = np.concatenate(tiles, axis=0)
    img = Image.fromarray(grid).resize((grid.shape[1] * a.scale, grid.shape[0] * a.scale), Image.NEAREST)
    label_w = 150
    canvas = Image.new("RGB", (img.width + label_w, img.height + 20), "white")
    canvas.paste(img, (label_w, 0))
    draw = ImageDraw.Draw(canvas)
    tile = img.height // len(tiles)
    for i, label in enumerate([*rows, "|bf16 - fp32| x 10"]):
        draw.text((4, i * tile + tile // 2 - 6), label, fill="black")
    draw.text(
        (4, img.height + 4),
        f"{a.model} synthesis; bf16 PSNR vs ONNX Runtime fp32 per face: " + ", ".join(f"{s:.1f}" for s in scores) + " dB",
        fill="black",
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(a.out) as tmp:
        canvas.save(tmp, format="PNG")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    script_app(SideBySideOptions, main, __doc__)(prog_name="python benchmarks/openvino_side_by_side.py")
