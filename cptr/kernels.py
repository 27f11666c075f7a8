"""Compiled CUDA kernels for StyleGAN2's two custom ops, plugged into :mod:`cptr.models.ops`.

:func:`load` builds ``cptr/export/plugins`` (``torch_ext.cpp`` and ``kernels/*.cu``, the same kernel
sources the TensorRT plugins use) with :func:`torch.utils.cpp_extension.load` the first time it runs
on a CUDA machine, then registers the kernels through :func:`cptr.models.ops.register_cuda_impl`.
Without CUDA (or without a CUDA compiler) it returns ``False`` and the reference ops stay in use::

    import cptr.kernels
    if not cptr.kernels.load():
        print("reference ops:", cptr.kernels.unavailable_reason())

The compiled module is cached by PyTorch (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) and rebuilt only when a source changes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch
from torch.autograd import Function

from cptr.models import ops

PLUGIN_DIR = Path(__file__).resolve().parent / "export" / "plugins"
SOURCES = ("torch_ext.cpp", "kernels/upfirdn2d.cu", "kernels/bias_act.cu")
EXTENSION_NAME = "cptr_kernels_ext"
MAX_FIR_SIDE = 16  # kMaxFirSide in kernels/cptr_kernels.h
_SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.float64)

_lock = threading.Lock()
_state: dict[str, object] = {"ext": None, "reason": "cptr.kernels.load() has not been called"}


def unavailable_reason() -> str | None:
    """Why the compiled kernels are not in use, or ``None`` once :func:`load` succeeded."""
    return None if _state["ext"] is not None else str(_state["reason"])


def is_loaded() -> bool:
    """True once the extension is built and registered."""
    return _state["ext"] is not None


def _extension() -> ModuleType:
    ext = _state["ext"]
    if ext is None:
        raise RuntimeError(f"the CPTR CUDA kernels are not loaded: {unavailable_reason()}. Call cptr.kernels.load() first.")
    return ext  # type: ignore[return-value]


def load(verbose: bool = False, strict: bool = False) -> bool:
    """Build (once) and register the CUDA kernels; ``False`` when CUDA is unavailable.

    ``strict=True`` raises instead of returning ``False``, with the reason (no GPU, no nvcc, a
    compile error). Safe to call many times and from several threads.
    """
    with _lock:
        if _state["ext"] is not None:
            return True
        reason = missing_requirement()
        if reason is None:
            try:
                from torch.utils.cpp_extension import load as cpp_load

                ext = cpp_load(
                    name=EXTENSION_NAME,
                    sources=[str(PLUGIN_DIR / s) for s in SOURCES],
                    extra_include_paths=[str(PLUGIN_DIR), str(PLUGIN_DIR / "kernels")],
                    extra_cflags=["-O3"],
                    extra_cuda_cflags=["-O3"],
                    verbose=verbose,
                )
            except Exception as exc:  # compiler missing or failing: report, keep the reference ops
                reason = f"building the CUDA extension failed: {type(exc).__name__}: {exc}"
            else:
                _state["ext"], _state["reason"] = ext, None
                ops.register_cuda_impl(upfirdn2d=upfirdn2d_cuda, fused_leaky_relu=fused_leaky_relu_cuda)
                return True
        _state["reason"] = reason
    if strict:
        raise RuntimeError(f"CPTR CUDA kernels unavailable: {reason}")
    return False


def missing_requirement() -> str | None:
    """What this machine lacks to build the kernels (GPU, CUDA toolkit, ninja, sources), or ``None``."""
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (no GPU, or a CPU-only build of PyTorch)"
    from torch.utils.cpp_extension import CUDA_HOME, is_ninja_available

    if CUDA_HOME is None:
        return "no CUDA toolkit found (set CUDA_HOME to a directory with bin/nvcc)"
    if not is_ninja_available():
        return "ninja is not installed; torch.utils.cpp_extension builds with it: pip install ninja (or cptr[gpu])"
    missing = [s for s in SOURCES if not (PLUGIN_DIR / s).is_file()]
    if missing:
        return f"kernel sources missing from {PLUGIN_DIR}: {missing}"
    return None


# --------------------------------------------------------------------------------------- upfirdn2d


def upfirdn2d_grad_config(
    in_size: tuple[int, int],
    kernel_size: tuple[int, int],
    up: tuple[int, int],
    down: tuple[int, int],
    pad: tuple[int, int, int, int],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int]]:
    """(up, down, pad) of the upfirdn2d that maps the output gradient back to the input gradient.

    The input gradient of ``upfirdn2d(x, k, up, down, pad)`` is ``upfirdn2d(g, flip(k), down, up,
    grad_pad)``: sizes are ``(h, w)`` and ``(kh, kw)``, up/down are ``(x, y)``, pad is
    ``(x0, x1, y0, y1)``. Per axis: ``grad_pad0 = k - pad0 - 1`` and
    ``grad_pad1 = in * up - out * down + pad0 - up + 1``.
    """
    (h, w), (kh, kw) = in_size, kernel_size
    (ux, uy), (dx, dy) = up, down
    px0, px1, py0, py1 = pad

    def axis(n: int, k: int, u: int, d: int, p0: int, p1: int) -> tuple[int, int]:
        out = (n * u + p0 + p1 - k) // d + 1
        return k - p0 - 1, n * u - out * d + p0 - u + 1

    gx0, gx1 = axis(w, kw, ux, dx, px0, px1)
    gy0, gy1 = axis(h, kh, uy, dy, py0, py1)
    return (dx, dy), (ux, uy), (gx0, gx1, gy0, gy1)


class _UpFirDn2d(Function):
    """upfirdn2d with the CUDA kernel; its backward is another upfirdn2d (so double backward works)."""

    @staticmethod
    def forward(ctx, x, kernel, up, down, pad):  # type: ignore[override]
        ctx.save_for_backward(kernel)
        ctx.config = (tuple(x.shape[2:]), up, down, pad)
        return _extension().upfirdn2d(x, kernel, up[0], up[1], down[0], down[1], *pad)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (kernel,) = ctx.saved_tensors
        in_size, up, down, pad = ctx.config
        grad_x = None
        if ctx.needs_input_grad[0]:
            g_up, g_down, g_pad = upfirdn2d_grad_config(in_size, tuple(kernel.shape), up, down, pad)
            grad_x = _UpFirDn2d.apply(grad, kernel.flip([0, 1]), g_up, g_down, g_pad)
            if tuple(grad_x.shape[2:]) != in_size:  # cannot happen for valid configurations
                raise RuntimeError(f"upfirdn2d backward produced {tuple(grad_x.shape)} for input size {in_size}")
        return grad_x, None, None, None, None


def upfirdn2d_cuda(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: Sequence[int] = (1, 1),
    down: Sequence[int] = (1, 1),
    pad: Sequence[int] = (0, 0, 0, 0),
) -> torch.Tensor:
    """upfirdn2d on CUDA tensors (``up``/``down`` as ``(x, y)``, ``pad`` as ``(x0, x1, y0, y1)``).

    Falls back to the reference for what the kernel does not cover: dtypes other than float16/32/64,
    kernels larger than 16x16, or a kernel that needs a gradient.
    """
    up_t = (int(up[0]), int(up[1]))
    down_t = (int(down[0]), int(down[1]))
    pad_t = tuple(int(p) for p in pad)
    if len(pad_t) != 4:
        raise ValueError(f"pad must be (x0, x1, y0, y1), got {pad!r}")
    unsupported = (
        x.dtype not in _SUPPORTED_DTYPES
        or kernel.ndim != 2
        or max(kernel.shape) > MAX_FIR_SIDE
        or (kernel.requires_grad and torch.is_grad_enabled())
    )
    if unsupported or not x.is_cuda:
        return ops.upfirdn2d_ref(x, kernel, up=up_t, down=down_t, pad=pad_t)
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NCHW input, got shape {tuple(x.shape)}")
    kernel = kernel.detach().to(device=x.device, dtype=torch.float32)
    return _UpFirDn2d.apply(x, kernel, up_t, down_t, pad_t)


# ------------------------------------------------------------------------------ fused leaky ReLU


class _FusedLeakyReLUGrad(Function):
    """(grad_x, grad_bias) from the saved output; differentiable once more (for R1 / path length)."""

    @staticmethod
    def forward(ctx, grad, out, negative_slope, scale):  # type: ignore[override]
        grad_x = _extension().bias_leaky_relu_grad(grad, None, out, negative_slope, scale)
        grad_bias = grad_x.sum([0, *range(2, grad_x.ndim)])
        ctx.save_for_backward(out)
        ctx.negative_slope, ctx.scale = negative_slope, scale
        return grad_x, grad_bias

    @staticmethod
    def backward(ctx, gg_x, gg_bias):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        # d/d(grad) of <gg_x, grad_x> + <gg_bias, grad_bias> = (gg_x + gg_bias[c]) * mask * scale
        gg = _extension().bias_leaky_relu_grad(gg_x, gg_bias, out, ctx.negative_slope, ctx.scale)
        return gg, None, None, None


class _FusedLeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, bias, negative_slope, scale):  # type: ignore[override]
        out = _extension().bias_leaky_relu(x, bias, negative_slope, scale)
        ctx.save_for_backward(out)
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.negative_slope, ctx.scale = negative_slope, scale
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        grad_x, grad_bias = _FusedLeakyReLUGrad.apply(grad, out, ctx.negative_slope, ctx.scale)
        if ctx.bias_dtype is None or not ctx.needs_input_grad[1]:
            grad_bias = None
        else:
            grad_bias = grad_bias.to(ctx.bias_dtype)
        return (grad_x if ctx.needs_input_grad[0] else None), grad_bias, None, None


def fused_leaky_relu_cuda(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = math.sqrt(2.0),
) -> torch.Tensor:
    """``leaky_relu(x + bias, negative_slope) * scale`` with the fused kernel (bias on dim 1).

    Falls back to the reference for unsupported dtypes, inputs with fewer than 2 dims, or a
    non-positive ``scale`` (the backward reads the sign of the saved output).
    """
    if x.dtype not in _SUPPORTED_DTYPES or x.ndim < 2 or not x.is_cuda or not scale > 0:
        return ops.fused_leaky_relu_ref(x, bias, negative_slope, scale)
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != x.shape[1]):
        raise ValueError(
            f"bias of shape {tuple(bias.shape)} does not match {x.shape[1]} channels of input {tuple(x.shape)}"
        )
    return _FusedLeakyReLU.apply(x, bias, float(negative_slope), float(scale))
