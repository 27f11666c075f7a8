"""upfirdn2d: upsample (zero insertion), pad, FIR-filter and downsample a batch of images.

Everything about the op in one file, beside its kernel (``upfirdn2d.cu``, ``upfirdn2d_impl.cuh``):

- :func:`upfirdn2d_ref`, the reference in plain PyTorch (reshape, pad, slice, a depthwise conv);
- :func:`upfirdn2d`, the call the models use: the CUDA kernel when it is loaded (:func:`cptr.ops.load`),
  an ``UpFirDn2d`` plugin node while exporting inside :func:`~cptr.ops.export_plugin_nodes`, else the
  reference;
- :func:`upfirdn2d_cuda`, the kernel with its autograd (the backward is another upfirdn2d).

Semantics follow rosinality/stylegan2-pytorch: zero-insertion upsample, pad (negative values crop),
*true* convolution with the FIR kernel (the kernel is flipped), then keep every ``down``-th sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.autograd import Function

from cptr.ops.dispatch import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION, Impl, cuda_impl, emit_plugin
from cptr.ops.extension import extension

MAX_FIR_SIDE = 16  # kMaxFirSide in cptr_kernels.h
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.float64)


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


def make_kernel(taps: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """A normalised 2-D FIR kernel: the outer product of 1-D ``taps`` (or a 2-D kernel), summing to 1."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    if k.ndim != 2:
        raise ValueError(f"FIR taps must be 1-D or 2-D, got shape {tuple(k.shape)}")
    return k / k.sum()


# --------------------------------------------------------------------------- reference


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


# --------------------------------------------------------------------------- the call


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
    cuda = cuda_impl("upfirdn2d", x, impl)
    if cuda is not None:
        return cuda(x, kernel, up=_pair(up), down=_pair(down), pad=parse_pad(pad))
    if emit_plugin():
        (ux, uy), (dx, dy), (px0, px1, py0, py1) = _pair(up), _pair(down), parse_pad(pad)
        if ux == uy and dx == dy and (px0, px1) == (py0, py1):
            taps = tuple(float(v) for v in kernel.detach().float().flatten().tolist())
            return _UpFirDn2dPlugin.apply(x, kernel, ux, dx, px0, px1, taps)
    return upfirdn2d_ref(x, kernel, up=up, down=down, pad=pad)


# --------------------------------------------------------------------------- export symbolic


class _UpFirDn2dPlugin(Function):
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
            f"{PLUGIN_DOMAIN}::UpFirDn2d",
            x,
            up_i=up,
            down_i=down,
            pad0_i=pad0,
            pad1_i=pad1,
            kh_i=kh,
            kw_i=kw,
            kernel_f=list(taps),
            plugin_namespace_s=PLUGIN_NAMESPACE,
            plugin_version_s=PLUGIN_VERSION,
        ).setType(x.type())


# --------------------------------------------------------------------------- CUDA kernel


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
        return extension().upfirdn2d(x, kernel, up[0], up[1], down[0], down[1], *pad)

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
        x.dtype not in _KERNEL_DTYPES
        or kernel.ndim != 2
        or max(kernel.shape) > MAX_FIR_SIDE
        or (kernel.requires_grad and torch.is_grad_enabled())
    )
    if unsupported or not x.is_cuda:
        return upfirdn2d_ref(x, kernel, up=up_t, down=down_t, pad=pad_t)
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NCHW input, got shape {tuple(x.shape)}")
    kernel = kernel.detach().to(device=x.device, dtype=torch.float32)
    return _UpFirDn2d.apply(x, kernel, up_t, down_t, pad_t)
