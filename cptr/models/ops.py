"""StyleGAN2's two custom ops: ``upfirdn2d`` and fused bias + leaky ReLU.

Each op has one reference implementation in plain PyTorch. It works on any device and dtype, has
autograd, and exports to standard ONNX ops: reshape, pad, slice and a depthwise conv. A compiled CUDA
kernel can replace it on CUDA tensors through :func:`register_cuda_impl`, and the reference stays the
fallback. Semantics follow rosinality/stylegan2-pytorch: zero-insertion upsample, pad (negative values
crop), *true* convolution with the FIR kernel (the kernel is flipped), then keep every ``down``-th
sample.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Impl = Literal["auto", "ref", "cuda"]

_CUDA_IMPL: dict[str, Callable[..., torch.Tensor]] = {}
_DEFAULT_IMPL: list[Impl] = ["auto"]
_PLUGIN_EXPORT: list[bool] = [False]

# ONNX custom nodes that TensorRT's parser maps to the plugins in cptr/export/plugins (namespace
# "cptr"): node attributes are the plugins' fields. ONNX Runtime runs them through
# cptr.export.plugin_ops for verification.
PLUGIN_DOMAIN = "ai.onnx.contrib"
PLUGIN_NAMESPACE = "cptr"
PLUGIN_VERSION = "1"

SQRT2 = math.sqrt(2.0)


def register_cuda_impl(
    upfirdn2d: Callable[..., torch.Tensor] | None = None,
    fused_leaky_relu: Callable[..., torch.Tensor] | None = None,
) -> None:
    """Plug compiled CUDA kernels in (called by :mod:`cptr.kernels` once the extension is built).

    ``upfirdn2d(x, kernel, up=(ux, uy), down=(dx, dy), pad=(x0, x1, y0, y1))`` and
    ``fused_leaky_relu(x, bias, negative_slope, scale)`` must match the reference functions below.
    """
    if upfirdn2d is not None:
        _CUDA_IMPL["upfirdn2d"] = upfirdn2d
    if fused_leaky_relu is not None:
        _CUDA_IMPL["fused_leaky_relu"] = fused_leaky_relu


def unregister_cuda_impl() -> None:
    """Forget the compiled kernels; every op then runs the reference implementation."""
    _CUDA_IMPL.clear()


def set_default_impl(impl: Impl) -> None:
    """Choose the implementation used when a call passes ``impl='auto'`` (the default)."""
    if impl not in ("auto", "ref", "cuda"):
        raise ValueError(f"impl must be 'auto', 'ref' or 'cuda', got {impl!r}")
    _DEFAULT_IMPL[0] = impl


@contextlib.contextmanager
def default_impl(impl: Impl) -> Iterator[None]:
    """While active, calls with ``impl='auto'`` use ``impl``; the previous default comes back after."""
    previous = _DEFAULT_IMPL[0]
    set_default_impl(impl)
    try:
        yield
    finally:
        _DEFAULT_IMPL[0] = previous


def _tracing() -> bool:
    """True while exporting or compiling: graphs must contain the reference ops only."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if hasattr(torch, "compiler") and torch.compiler.is_compiling():
        return True
    return bool(torch.onnx.is_in_onnx_export())


def _use_cuda(name: str, x: torch.Tensor, impl: Impl) -> bool:
    if impl == "auto":
        impl = _DEFAULT_IMPL[0]
    if impl == "ref":
        return False
    available = x.is_cuda and name in _CUDA_IMPL and not _tracing()
    if impl == "cuda" and not available:
        raise RuntimeError(
            f"impl='cuda' was requested for {name}, but the CUDA kernel is not available "
            f"(tensor on {x.device}, kernels registered: {sorted(_CUDA_IMPL) or 'none'}). "
            "Build it with cptr.kernels.load() on a CUDA machine, or use impl='ref'."
        )
    return available


@contextlib.contextmanager
def export_plugin_nodes(enabled: bool = True) -> Iterator[None]:
    """While active, ONNX export emits ``UpFirDn2d`` / ``FusedBiasLeakyReLU`` plugin nodes."""
    previous = _PLUGIN_EXPORT[0]
    _PLUGIN_EXPORT[0] = enabled
    try:
        yield
    finally:
        _PLUGIN_EXPORT[0] = previous


def _emit_plugin() -> bool:
    return _PLUGIN_EXPORT[0] and bool(torch.onnx.is_in_onnx_export())


class _UpFirDn2dPlugin(torch.autograd.Function):
    """Reference forward; exports as one ``UpFirDn2d`` plugin node (same up/down/pad on both axes).

    The node's attributes are the TensorRT plugin's fields: up, down, pad0, pad1, kh, kw and the
    row-major FIR ``kernel`` taps (applied as a true convolution, like the reference).
    """

    @staticmethod
    def forward(ctx, x, kernel, up: int, down: int, pad0: int, pad1: int, taps: tuple):  # type: ignore[override]
        return upfirdn2d_ref(x, kernel, up=up, down=down, pad=(pad0, pad1))

    @staticmethod
    def symbolic(g, x, kernel, up, down, pad0, pad1, taps):  # pragma: no cover - runs inside the exporter
        kh, kw = kernel.type().sizes()
        return g.op(
            f"{PLUGIN_DOMAIN}::UpFirDn2d", x, up_i=up, down_i=down, pad0_i=pad0, pad1_i=pad1, kh_i=kh, kw_i=kw,
            kernel_f=list(taps), plugin_namespace_s=PLUGIN_NAMESPACE, plugin_version_s=PLUGIN_VERSION,
        ).setType(x.type())


class _FusedBiasLeakyReLUPlugin(torch.autograd.Function):
    """Reference forward; exports as one ``FusedBiasLeakyReLU`` plugin node."""

    @staticmethod
    def forward(ctx, x, bias, negative_slope: float, scale: float):  # type: ignore[override]
        return fused_leaky_relu_ref(x, bias, negative_slope, scale)

    @staticmethod
    def symbolic(g, x, bias, negative_slope, scale):  # pragma: no cover - runs inside the exporter
        return g.op(
            f"{PLUGIN_DOMAIN}::FusedBiasLeakyReLU", x, bias, negative_slope_f=negative_slope, scale_f=scale,
            plugin_namespace_s=PLUGIN_NAMESPACE, plugin_version_s=PLUGIN_VERSION,
        ).setType(x.type())


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if len(v) != 2:
        raise ValueError(f"expected an int or a pair, got {v!r}")
    return int(v[0]), int(v[1])


def parse_pad(pad: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Normalise ``pad`` to ``(x0, x1, y0, y1)``: an int, ``(p0, p1)`` for both axes, or four values."""
    if isinstance(pad, int):
        return pad, pad, pad, pad
    p = [int(v) for v in pad]
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"pad must have 1, 2 or 4 values, got {pad!r}")


def upfirdn2d_ref(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: int | Sequence[int] = (0, 0),
) -> torch.Tensor:
    """Reference upfirdn2d on NCHW input with a 2-D FIR ``kernel`` [kh, kw]."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NCHW input, got shape {tuple(x.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D kernel, got shape {tuple(kernel.shape)}")
    ux, uy = _pair(up)
    dx, dy = _pair(down)
    px0, px1, py0, py1 = parse_pad(pad)
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    if ux > 1 or uy > 1:  # zero insertion: each sample followed by (up - 1) zeros
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, ux - 1, 0, 0, 0, uy - 1])
        x = x.reshape(b, c, h * uy, w * ux)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    if min(px0, px1, py0, py1) < 0:
        x = x[
            :,
            :,
            max(-py0, 0) : x.shape[2] - max(-py1, 0),
            max(-px0, 0) : x.shape[3] - max(-px1, 0),
        ]
    # The channel count is static for a given layer: a plain int keeps the exported conv weight's
    # shape known (ONNX needs it), while the batch axis stays dynamic.
    c = int(c)
    weight = kernel.flip([0, 1]).to(x.dtype).reshape(1, 1, kh, kw).repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, stride=(dy, dx), groups=c)


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: int | Sequence[int] = (0, 0),
    impl: Impl = "auto",
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample a batch of images.

    Output size per axis: ``(in * up + pad0 + pad1 - k) // down + 1``.
    """
    if _use_cuda("upfirdn2d", x, impl):
        return _CUDA_IMPL["upfirdn2d"](x, kernel, up=_pair(up), down=_pair(down), pad=parse_pad(pad))
    if _emit_plugin():
        (ux, uy), (dx, dy), (px0, px1, py0, py1) = _pair(up), _pair(down), parse_pad(pad)
        if ux == uy and dx == dy and (px0, px1) == (py0, py1):
            taps = tuple(float(v) for v in kernel.detach().float().flatten().tolist())
            return _UpFirDn2dPlugin.apply(x, kernel, ux, dx, px0, px1, taps)
    return upfirdn2d_ref(x, kernel, up=up, down=down, pad=pad)


def fused_leaky_relu_ref(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
) -> torch.Tensor:
    """Reference ``leaky_relu(x + bias) * scale``, with ``bias`` broadcast on dim 1."""
    if bias is not None:
        if bias.ndim != 1 or bias.shape[0] != x.shape[1]:
            raise ValueError(
                f"bias of shape {tuple(bias.shape)} does not match {x.shape[1]} channels of input {tuple(x.shape)}"
            )
        x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
    impl: Impl = "auto",
) -> torch.Tensor:
    """Bias add, leaky ReLU and gain in one op (a CUDA kernel when available)."""
    if bias is not None and _use_cuda("fused_leaky_relu", x, impl):
        return _CUDA_IMPL["fused_leaky_relu"](x, bias, negative_slope, scale)
    if bias is not None and x.ndim == 4 and _emit_plugin():
        return _FusedBiasLeakyReLUPlugin.apply(x, bias, float(negative_slope), float(scale))
    return fused_leaky_relu_ref(x, bias, negative_slope, scale)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by a scaled leaky ReLU (parameter name ``bias``)."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = SQRT2):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


def make_kernel(taps: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """A normalised 2-D FIR kernel: the outer product of 1-D ``taps`` (or a 2-D kernel), summing to 1."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    if k.ndim != 2:
        raise ValueError(f"FIR taps must be 1-D or 2-D, got shape {tuple(k.shape)}")
    return k / k.sum()
