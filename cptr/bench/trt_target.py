"""TensorRT engines (CUDA machines only)."""

from __future__ import annotations

from collections.abc import Iterator

from cptr.bench.targets import Context, Engine, Unavailable
from cptr.bench.workloads import Workload


def engines(workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
    yield Unavailable("trt", "trt", "cptr.export.trt is not in this checkout yet")
