"""Which implementation an op call runs, and whether ONNX export emits plugin nodes.

Every op in :mod:`cptr.ops` has a reference implementation in plain PyTorch (any device and dtype,
autograd, standard ONNX ops). A compiled CUDA kernel replaces it on CUDA tensors once
:func:`cptr.ops.load` has registered it here; ``impl='ref'`` or :func:`default_impl` keeps the
reference. While tracing, scripting, compiling or exporting, graphs always hold the reference ops,
or, inside :func:`export_plugin_nodes`, one custom node per op that TensorRT maps to the plugins
built from ``cptr/engines/plugins`` (namespace :data:`PLUGIN_NAMESPACE`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch

Impl = Literal["auto", "ref", "cuda"]

_CUDA_IMPL: dict[str, Callable[..., torch.Tensor]] = {}
_DEFAULT_IMPL: list[Impl] = ["auto"]
_PLUGIN_EXPORT: list[bool] = [False]

# ONNX custom nodes that TensorRT's parser maps to the plugins of cptr/engines/plugins: node
# attributes are the plugins' fields. ONNX Runtime runs them through cptr.engines.plugin_ops.
PLUGIN_DOMAIN = "ai.onnx.contrib"
PLUGIN_NAMESPACE = "cptr"
PLUGIN_VERSION = "1"


def register_cuda_impl(
    upfirdn2d: Callable[..., torch.Tensor] | None = None,
    fused_leaky_relu: Callable[..., torch.Tensor] | None = None,
) -> None:
    """Plug compiled CUDA kernels in (called by :func:`cptr.ops.load` once the extension is built).

    ``upfirdn2d(x, kernel, up=(ux, uy), down=(dx, dy), pad=(x0, x1, y0, y1))`` and
    ``fused_leaky_relu(x, bias, negative_slope, scale)`` must match the reference functions.
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


def cuda_impl(name: str, x: torch.Tensor, impl: Impl) -> Callable[..., torch.Tensor] | None:
    """The registered CUDA kernel of op ``name`` when this call should run it, else ``None``."""
    if impl == "auto":
        impl = _DEFAULT_IMPL[0]
    if impl == "ref":
        return None
    available = x.is_cuda and name in _CUDA_IMPL and not _tracing()
    if impl == "cuda" and not available:
        raise RuntimeError(
            f"impl='cuda' was requested for {name}, but the CUDA kernel is not available "
            f"(tensor on {x.device}, kernels registered: {sorted(_CUDA_IMPL) or 'none'}). "
            "Build it with cptr.ops.load() on a CUDA machine, or use impl='ref'."
        )
    return _CUDA_IMPL[name] if available else None


@contextlib.contextmanager
def export_plugin_nodes(enabled: bool = True) -> Iterator[None]:
    """While active, ONNX export emits ``UpFirDn2d`` / ``FusedBiasLeakyReLU`` plugin nodes."""
    previous = _PLUGIN_EXPORT[0]
    _PLUGIN_EXPORT[0] = enabled
    try:
        yield
    finally:
        _PLUGIN_EXPORT[0] = previous


def emit_plugin() -> bool:
    """True while an ONNX export inside :func:`export_plugin_nodes` runs."""
    return _PLUGIN_EXPORT[0] and bool(torch.onnx.is_in_onnx_export())
