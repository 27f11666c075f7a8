"""Triton end to end: requests through a server (the embedded one, or ``--url``)."""

from __future__ import annotations

from collections.abc import Iterator

from cptr.bench.targets import Context, Engine, Target, Unavailable
from cptr.bench.workloads import Workload


class TritonTarget(Target):
    name = "triton"
    description = "Triton Inference Server end to end (embedded server or --url), gRPC/HTTP, optional shared memory"

    def engines(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        yield Unavailable("triton", self.name, "the Triton client (cptr.client) is not in this checkout yet")
