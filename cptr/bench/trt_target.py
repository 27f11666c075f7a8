"""TensorRT engines (CUDA machines only): the stage's ONNX export built by :mod:`cptr.engines.tensorrt`.

The engine runs on torch CUDA tensors (``execute_async_v3`` on torch's current stream), so the
timing loop's ``torch.cuda.synchronize`` is the device barrier. fp32 engines come from the fp32
ONNX graph with the FP16 flag off; fp16 engines from the fp16 graph with the flag on (TensorRT 11
builds strongly typed networks, where the graph's dtype decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from cptr.bench.targets import Context, Engine, Unavailable, export_onnx
from cptr.bench.workloads import Workload
from cptr.engines.tensorrt import build_engine, import_tensorrt


class TrtEngine(Engine):
    """A deserialized TensorRT plan with one execution context."""

    target = "trt"

    def __init__(self, plan: bytes, workload: Workload, name: str, precision: str, meta: dict[str, Any]):
        trt = import_tensorrt()
        self.trt, self.meta = trt, meta
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the plan it just built")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.in_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.out_name = workload.output.name
        self.dtypes = {n: self._torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self.name, self.precision, self.device = name, precision, "cuda"
        self.note = f"TensorRT {meta.get('tensorrt_version', '?')}, {meta.get('precision', precision)}"
        self.max_batch = int(meta.get("profile", {}).get("max", 0)) or None

    def _torch_dtype(self, dt: Any) -> torch.dtype:
        table = {
            self.trt.DataType.FLOAT: torch.float32,
            self.trt.DataType.HALF: torch.float16,
            self.trt.DataType.INT32: torch.int32,
            self.trt.DataType.INT64: torch.int64,
        }
        return table[dt]

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {n: torch.from_numpy(np.ascontiguousarray(feeds[n])).to("cuda", self.dtypes[n]) for n in self.in_names}

    def run(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        for n, t in prepared.items():
            self.context.set_input_shape(n, tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        out = torch.empty(tuple(self.context.get_tensor_shape(self.out_name)), dtype=self.dtypes[self.out_name], device="cuda")
        self.context.set_tensor_address(self.out_name, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return out

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def to_numpy(self, out: torch.Tensor) -> np.ndarray:
        return out.float().cpu().numpy()

    def info(self) -> dict[str, Any]:
        return dict(self.meta)


def engines(workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
    if workload.stage not in ("synthesis", "mapping", "encoder", "mapper"):
        yield Unavailable(
            "trt", "trt", f"stage {workload.stage!r} has no single TensorRT engine; use --stage synthesis, mapping, encoder or mapper"
        )
        return
    hi = max(1, ctx.batch_max)
    for precision in ("fp32", "fp16"):
        name = f"trt-{precision}"
        try:
            if ctx.log:
                ctx.log(f"building {name} (TensorRT)")
            onnx_path = export_onnx(workload, precision, ctx)
            plan = ctx.workdir / f"{workload.stage}-{precision}.plan"
            meta = build_engine(
                onnx_path, plan, profile=(1, min(8, hi), hi), fp16=precision == "fp16", timing_cache=ctx.workdir / "trt.cache"
            )
            yield TrtEngine(plan.read_bytes(), workload, name, precision, meta)
        except Exception as e:  # noqa: BLE001
            yield Unavailable(name, "trt", f"build failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}", failed=True)
