"""Fused bias + leaky ReLU + gain (StyleGAN2's ``fused_leaky_relu``).

Everything about the op in one file, beside its kernel (``bias_act.cu``, ``bias_act_impl.cuh``):

- :func:`fused_leaky_relu_ref`, the reference ``leaky_relu(x + bias) * scale`` in plain PyTorch;
- :func:`fused_leaky_relu` and the :class:`FusedLeakyReLU` layer, the calls the models use: the CUDA
  kernel when it is loaded (:func:`cptr.ops.load`), a ``FusedBiasLeakyReLU`` plugin node while
  exporting inside :func:`~cptr.ops.export_plugin_nodes`, else the reference;
- :func:`fused_leaky_relu_cuda`, the kernel with its autograd (differentiable twice, for R1 and the
  path-length penalty).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

from cptr.ops.dispatch import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION, Impl, cuda_impl, emit_plugin
from cptr.ops.extension import extension

SQRT2 = math.sqrt(2.0)
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.float64)


def _check_bias(x: torch.Tensor, bias: torch.Tensor) -> None:
    if bias.ndim != 1 or bias.shape[0] != x.shape[1]:
        raise ValueError(f"bias of shape {tuple(bias.shape)} does not match {x.shape[1]} channels of input {tuple(x.shape)}")


# --------------------------------------------------------------------------- reference


def fused_leaky_relu_ref(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
) -> torch.Tensor:
    """Reference ``leaky_relu(x + bias) * scale``, with ``bias`` broadcast on dim 1."""
    if bias is not None:
        _check_bias(x, bias)
        x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


# --------------------------------------------------------------------------- the call


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
    impl: Impl = "auto",
) -> torch.Tensor:
    """Bias add, leaky ReLU and gain in one op (a CUDA kernel when available)."""
    cuda = cuda_impl("fused_leaky_relu", x, impl) if bias is not None else None
    if cuda is not None:
        return cuda(x, bias, negative_slope, scale)
    if bias is not None and x.ndim == 4 and emit_plugin():
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


# --------------------------------------------------------------------------- export symbolic


class _FusedBiasLeakyReLUPlugin(Function):
    """Reference forward; exports as one ``FusedBiasLeakyReLU`` plugin node."""

    @staticmethod
    def forward(ctx, x, bias, negative_slope: float, scale: float):  # type: ignore[override]
        return fused_leaky_relu_ref(x, bias, negative_slope, scale)

    @staticmethod
    def symbolic(g, x, bias, negative_slope, scale):  # pragma: no cover - runs inside the exporter
        return g.op(
            f"{PLUGIN_DOMAIN}::FusedBiasLeakyReLU",
            x,
            bias,
            negative_slope_f=negative_slope,
            scale_f=scale,
            plugin_namespace_s=PLUGIN_NAMESPACE,
            plugin_version_s=PLUGIN_VERSION,
        ).setType(x.type())


# --------------------------------------------------------------------------- CUDA kernel


class _FusedLeakyReLUGrad(Function):
    """(grad_x, grad_bias) from the saved output; differentiable once more (for R1 / path length)."""

    @staticmethod
    def forward(ctx, grad, out, negative_slope, scale):  # type: ignore[override]

        grad_x = extension().bias_leaky_relu_grad(grad, None, out, negative_slope, scale)
        grad_bias = grad_x.sum([0, *range(2, grad_x.ndim)])
        ctx.save_for_backward(out)
        ctx.negative_slope, ctx.scale = negative_slope, scale
        return grad_x, grad_bias

    @staticmethod
    def backward(ctx, gg_x, gg_bias):  # type: ignore[override]

        (out,) = ctx.saved_tensors
        # d/d(grad) of <gg_x, grad_x> + <gg_bias, grad_bias> = (gg_x + gg_bias[c]) * mask * scale
        gg = extension().bias_leaky_relu_grad(gg_x, gg_bias, out, ctx.negative_slope, ctx.scale)
        return gg, None, None, None


class _FusedLeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, bias, negative_slope, scale):  # type: ignore[override]

        out = extension().bias_leaky_relu(x, bias, negative_slope, scale)
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
    scale: float = SQRT2,
) -> torch.Tensor:
    """``leaky_relu(x + bias, negative_slope) * scale`` with the fused kernel (bias on dim 1).

    Falls back to the reference for unsupported dtypes, inputs with fewer than 2 dims, or a
    non-positive ``scale`` (the backward reads the sign of the saved output).
    """
    if x.dtype not in _KERNEL_DTYPES or x.ndim < 2 or not x.is_cuda or not scale > 0:
        return fused_leaky_relu_ref(x, bias, negative_slope, scale)
    if bias is not None:
        _check_bias(x, bias)
    return _FusedLeakyReLU.apply(x, bias, float(negative_slope), float(scale))
