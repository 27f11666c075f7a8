"""OpenVINO engines on the CPU: the stage's ONNX export converted to IR and compiled by :mod:`cptr.engines.openvino`.

``openvino-fp32`` and ``openvino-bf16`` are the engines ``cptr-export --engine openvino`` builds and
the served stages run (same IR conversion, same :class:`~cptr.engines.openvino.EngineConfig`, the
latency hint, ``--threads`` as OpenVINO's inference threads). bf16 is unavailable, with OpenVINO's
reason, on a CPU without it. ``generate`` and ``pipeline`` chain the stage engines in process, as
the ONNX Runtime target does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cptr.bench.targets import Context, Engine, OrtGenerateEngine, Target, Unavailable, _first_line, export_onnx
from cptr.bench.workloads import Workload
from cptr.engines.openvino import EngineConfig, OpenVINOEngine, convert_onnx, cpu_capabilities, resolve_precision
from cptr.serving.stages import decode_and_align

PRECISIONS = ("fp32", "bf16")


class OpenVINOBenchEngine(Engine):
    """One compiled OpenVINO IR (:class:`cptr.engines.openvino.OpenVINOEngine`)."""

    target = "openvino"

    def __init__(self, xml: Path, workload: Workload, name: str, config: Any, note: str = ""):
        self.engine = OpenVINOEngine(xml, config)
        self.names = [s.name for s in workload.inputs]
        self.output = workload.output.name
        self.name, self.precision, self.device = name, self.engine.precision, "cpu"
        info = self.engine.runtime_info()
        self.note = note or (
            f"OpenVINO {info['inference_precision']}, {info['performance_hint'].lower()} hint, "
            f"{info['streams']} stream(s) x {info.get('threads_per_stream', '?')} thread(s)"
        )

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: np.ascontiguousarray(feeds[n]) for n in self.names}

    def run(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.engine(prepared)[self.output]

    def info(self) -> dict[str, Any]:
        return self.engine.info()


class OpenVINOGenerateEngine(OrtGenerateEngine):
    """The ``generate`` ensemble in one process: seeds -> z (NumPy), mapping and synthesis in OpenVINO."""

    target = "openvino"


class OpenVINOPipelineEngine(Engine):
    """The ``cartoonize`` ensemble in one process: decode + align, then encoder and synthesis in OpenVINO."""

    target = "openvino"

    def __init__(self, encoder: OpenVINOBenchEngine, synthesis: OpenVINOBenchEngine, name: str, note: str):
        self.encoder, self.synthesis, self._align = encoder, synthesis, decode_and_align
        self.name, self.precision, self.device, self.note = name, synthesis.precision, "cpu", note

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        crops = np.stack([self._align(bytes(b))[1] for b in feeds["image_bytes"].reshape(-1)])
        w_plus = self.encoder.run({"aligned": crops})
        return self.synthesis.run({"w_plus": w_plus})

    def info(self) -> dict[str, Any]:
        return self.synthesis.info()


def openvino_ir(workload: Workload, ctx: Context, key: str) -> Path:
    """The IR of one of the workload's stages, converted from its fp32 ONNX file (cached per run)."""

    onnx_path = export_onnx(workload, "fp32", ctx, key)
    xml = onnx_path.with_name(f"{onnx_path.stem}-openvino.xml")
    if not xml.is_file():
        convert_onnx(onnx_path, xml)
    return xml


def _stage_workload(workload: Workload, key: str) -> Workload:
    """A single-stage view of a composite workload (its catalogue stage's served tensors)."""
    stage = workload.stages[key]
    return Workload(
        key,
        workload.model_name,
        stage.served_inputs,
        stage.outputs[0],
        stage.served_module,
        lambda batch, rng: {},
        workload.generator,
        {},
        {key: stage},
    )


def _engine(workload: Workload, ctx: Context, name: str, config: Any) -> Engine:
    if workload.stage == "generate":
        mapping, synthesis = (
            OpenVINOBenchEngine(openvino_ir(workload, ctx, key), _stage_workload(workload, key), f"{name}-{key}", config)
            for key in ("mapping", "synthesis")
        )
        return OpenVINOGenerateEngine(mapping, synthesis, workload, name, f"{synthesis.note}; seeds and mixing in NumPy, in process")
    if workload.stage == "pipeline":
        encoder, synthesis = (
            OpenVINOBenchEngine(openvino_ir(workload, ctx, key), _stage_workload(workload, key), f"{name}-{key}", config)
            for key in ("encoder", "synthesis")
        )
        return OpenVINOPipelineEngine(encoder, synthesis, name, f"{synthesis.note}; align in NumPy/MediaPipe, in process")
    return OpenVINOBenchEngine(openvino_ir(workload, ctx, workload.stage), workload, name, config)


class OpenVINOTarget(
    Target,
    name="openvino",
    description="OpenVINO on the CPU, fp32 and bf16 (bf16 where the CPU has it), the engines cptr-export --engine openvino builds",
):
    def missing(self, workload: Workload, ctx: Context) -> str | None:
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed: pip install 'cptr[openvino]'"
        return None if workload.stages else f"no ONNX export for stage {workload.stage!r}"

    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        capabilities = cpu_capabilities()
        for precision in PRECISIONS:
            name = f"openvino-{precision}"
            runs, notice = resolve_precision(precision, capabilities)
            if runs != precision:
                yield Unavailable(name, self.name, notice or f"{precision} is not available here")
                continue
            try:
                yield _engine(workload, ctx, name, EngineConfig(precision, "latency", None, ctx.threads))
            except Exception as e:  # noqa: BLE001 - report and go on with the other engines
                yield Unavailable(name, self.name, f"build failed: {type(e).__name__}: {_first_line(e)}", failed=True)
