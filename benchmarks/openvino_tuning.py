"""OpenVINO CPU tuning for the synthesis graph: which compile settings close the gap to the bf16 limit.

Compiles the ``ffhq256`` synthesis graph that ``cptr-export`` writes (random weights, the same ONNX
file the benchmark times) under several OpenVINO settings and times them beside ONNX Runtime fp32 in
interleaved rounds (median per variant), at batch 1 and 4:

* precision: f32, bf16;
* performance hint: latency (one stream on every core) or throughput (streams in parallel: timed as
  images/s with one request per stream in flight);
* inference threads: 1 or all cores;
* a static-shape model (the dynamic batch axis fixed to the timed batch before compiling).

Run it on a quiet machine::

    python benchmarks/openvino_tuning.py --rounds 5 --out benchmarks/results/openvino_tuning.json

It prints a Markdown table (ms per image and the ratio to ONNX Runtime fp32 at the same batch).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cptr.bench.openvino_target import openvino_ir  # noqa: E402
from cptr.bench.targets import Context, export_onnx  # noqa: E402
from cptr.bench.workloads import MODELS, benchmark_model, build_workload  # noqa: E402
from cptr.engines.onnxruntime import ort_session  # noqa: E402
from cptr.engines.openvino import import_openvino, psnr  # noqa: E402
from cptr.options import option, positive_ints, script_app  # noqa: E402

# name -> (precision, hint, streams, threads, static shape)
VARIANTS: dict[str, tuple[str, str, int | None, int | None, bool]] = {
    "ov-f32 latency": ("f32", "LATENCY", None, None, False),
    "ov-f32 latency static": ("f32", "LATENCY", None, None, True),
    "ov-f32 throughput 2x1": ("f32", "THROUGHPUT", 2, 2, False),
    "ov-bf16 latency": ("bf16", "LATENCY", None, None, False),
    "ov-bf16 latency static": ("bf16", "LATENCY", None, None, True),
    "ov-bf16 latency 1 thread": ("bf16", "LATENCY", None, 1, False),
    "ov-bf16 throughput 2x1": ("bf16", "THROUGHPUT", 2, 2, False),
}


@dataclass
class TuningOptions:
    """The options of ``benchmarks/openvino_tuning.py`` (each field one option: :mod:`cptr.options`)."""

    model: str = option("ffhq256", parse=benchmark_model, help=f"Benchmark model: {' | '.join(MODELS)} | PATH to a checkpoint.")
    batch: str = option("1,4", parse=positive_ints("--batch", "1,4"), help="Batch sizes, separated by commas.")
    rounds: int = option(5, min=1, help="Interleaved rounds; the median is reported.")
    images: int = option(8, min=1, help="Images per variant per round.")
    out: Path | None = option(None, help="JSON file for the figures (default: none written).")


class OvVariant:
    def __init__(
        self, core: Any, xml: Path, batch: int, precision: str, hint: str, streams: int | None, threads: int | None, static: bool
    ) -> None:
        import openvino as ov  # optional (the openvino extra): main checks it is installed first (import_openvino)

        model = core.read_model(str(xml))
        if static:
            model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([batch, *model.inputs[0].get_partial_shape()[1:]])})
        props = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
        if streams:
            props["NUM_STREAMS"] = str(streams)
        if threads:
            props["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", props)
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.queue = ov.AsyncInferQueue(self.compiled, self.streams)

    def run(self, x: np.ndarray, images: int) -> float:
        """Seconds per image for ``images`` images (batches of len(x)), all streams busy."""
        runs = max(self.streams, images // len(x))
        start = time.perf_counter()
        for _ in range(runs):
            self.queue.start_async({0: x})
        self.queue.wait_all()
        return (time.perf_counter() - start) / (runs * len(x))

    def output(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled.create_infer_request().infer({0: x})[0])


class OrtVariant:
    def __init__(self, onnx_path: Path) -> None:
        self.session = ort_session(onnx_path)
        self.name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray, images: int) -> float:
        runs = max(1, images // len(x))
        start = time.perf_counter()
        for _ in range(runs):
            self.session.run(None, {self.name: x})
        return (time.perf_counter() - start) / (runs * len(x))

    def output(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: x})[0]


def main(a: TuningOptions) -> None:
    ov = import_openvino()
    work = Path(tempfile.mkdtemp(prefix="cptr-ov-tuning-"))
    workload = build_workload("synthesis", a.model)
    ctx = Context(workdir=work)
    onnx_path, xml = export_onnx(workload, "fp32", ctx), openvino_ir(workload, ctx, "synthesis")
    core = ov.Core()
    rng = np.random.default_rng(0)
    rows = []
    for batch in [int(b) for b in a.batch.split(",")]:
        feeds = workload.sample(batch, rng)
        x = np.ascontiguousarray(next(iter(feeds.values())), dtype=np.float32)
        engines = {"ort-f32": OrtVariant(onnx_path)}
        engines.update({name: OvVariant(core, xml, batch, *cfg) for name, cfg in VARIANTS.items()})
        reference = engines["ort-f32"].output(x)
        quality = {name: psnr(e.output(x), reference) for name, e in engines.items()}
        times: dict[str, list[float]] = {name: [] for name in engines}
        for e in engines.values():  # warm-up
            e.run(x, batch)
        for r in range(a.rounds):
            for name, e in engines.items():
                times[name].append(e.run(x, a.images))
            print(f"batch {batch}: round {r + 1}/{a.rounds}", file=sys.stderr, flush=True)
        base = statistics.median(times["ort-f32"])
        for name, t in times.items():
            med = statistics.median(t)
            rows.append(
                {
                    "batch": batch,
                    "variant": name,
                    "ms_per_image": med * 1e3,
                    "speedup_vs_ort_f32": base / med,
                    "psnr_vs_ort_f32": quality[name],
                    "streams": getattr(engines[name], "streams", 1),
                }
            )
    print(
        f"\nOpenVINO {ov.get_version()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"model {a.model} synthesis, {a.rounds} interleaved rounds, median ms per image\n"
    )
    print("| batch | variant | streams | ms / image | x ORT fp32 | PSNR vs ORT fp32 (dB) |\n|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['batch']} | {row['variant']} | {row['streams']} | {row['ms_per_image']:.0f} | {row['speedup_vs_ort_f32']:.2f} | "
            f"{row['psnr_vs_ort_f32']:.1f} |"
        )
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"openvino": ov.get_version(), "model": a.model, "rounds": a.rounds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    script_app(TuningOptions, main, __doc__)(prog_name="python benchmarks/openvino_tuning.py")
