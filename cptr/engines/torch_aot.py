"""The compiled PyTorch engine (``cptr-export --engine torch``): torch.export + AOTInductor.

Each stage becomes a ``.pt2`` package holding compiled kernels for one device (CUDA in production,
CPU works too), with a dynamic batch axis. fp16 engines keep FP32 at the boundary and cast inside,
so they honour the same tensor contract as the ONNX models. The package is written atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cptr.io import atomic_path


class _Fp16Boundary(nn.Module):
    """Run ``module`` in fp16 while its inputs and outputs stay fp32."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.half()

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.module(*[a.half() for a in args]).float()


def _check_precision(precision: str, device: torch.device) -> None:
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 torch engines are built for CUDA; use --precision fp32 on a CPU")


def build_torch_engine(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    out_path: str | os.PathLike,
    device: str | torch.device = "cuda",
    precision: str = "fp16",
    batch_max: int = 32,
) -> dict[str, Any]:
    """Compile ``module`` (all inputs batched on axis 0) into an AOTInductor package at ``out_path``.

    Returns metadata for the manifest (device, precision, batch range, torch version, build time).
    """
    device = torch.device(device)
    _check_precision(precision, device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--engine torch targets CUDA, but torch.cuda.is_available() is False on this machine")
    if len(example_inputs) != len(input_names):
        raise ValueError(f"{len(example_inputs)} example inputs for {len(input_names)} names")
    module = module.eval().to(device)
    if precision == "fp16":
        module = _Fp16Boundary(module)
    example = tuple(t.to(device=device, dtype=torch.float32) for t in example_inputs)
    batch = torch.export.Dim("batch", min=1, max=batch_max)
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(module, example, dynamic_shapes=tuple({0: batch} for _ in example))
        with atomic_path(out_path) as tmp:
            # AOTInductor insists on a .pt2 suffix; compile beside the temp file, then move it in.
            staging = tmp.with_suffix(".pt2")
            try:
                torch._inductor.aoti_compile_and_package(program, package_path=str(staging))
                os.replace(staging, tmp)
            finally:
                staging.unlink(missing_ok=True)
    meta = {
        "engine": "torch-aoti",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "precision": precision,
        "batch": [1, batch_max],
        "inputs": list(input_names),
        "torch": torch.__version__,
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    if device.type == "cuda":
        meta["cuda"] = torch.version.cuda
    return meta


def load_torch_engine(path: str | os.PathLike, device: str | torch.device = "cuda") -> Callable[..., torch.Tensor]:
    """Load a ``.pt2`` engine; call it with FP32 tensors on ``device``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"torch engine {p} does not exist; build it with cptr-export --engine torch")
    device = torch.device(device)
    index = device.index if device.index is not None else (torch.cuda.current_device() if device.type == "cuda" else -1)
    return torch._inductor.aoti_load_package(str(p), device_index=index)
