"""StyleGAN2's two custom ops, each kept together as in NVlabs' ``torch_utils/ops``.

| op | Python (reference, call, autograd, export symbolic) | CUDA kernel |
|---|---|---|
| upfirdn2d | :mod:`cptr.ops.upfirdn2d` | ``upfirdn2d.cu``, ``upfirdn2d_impl.cuh`` |
| fused bias + leaky ReLU | :mod:`cptr.ops.bias_act` | ``bias_act.cu``, ``bias_act_impl.cuh`` |

Shared: ``cptr_kernels.h`` and ``kernel_common.cuh`` (the launchers both bindings call),
``torch_ext.cpp`` (the PyTorch binding) and :mod:`cptr.ops.extension` (its loader, :func:`load`),
:mod:`cptr.ops.dispatch` (reference or kernel per call; plugin nodes while exporting). The TensorRT
plugins in ``cptr/engines/plugins`` compile the same ``.cu`` files.

Every op works without the kernels: the reference runs on any device and dtype, with autograd, and
exports to standard ONNX ops.
"""

from cptr.ops.bias_act import SQRT2, FusedLeakyReLU, fused_leaky_relu, fused_leaky_relu_cuda, fused_leaky_relu_ref
from cptr.ops.dispatch import (
    PLUGIN_DOMAIN,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
    Impl,
    default_impl,
    export_plugin_nodes,
    register_cuda_impl,
    set_default_impl,
    unregister_cuda_impl,
)
from cptr.ops.extension import KERNEL_DIR, SOURCES, is_loaded, load, missing_requirement, unavailable_reason
from cptr.ops.upfirdn2d import MAX_FIR_SIDE, make_kernel, parse_pad, upfirdn2d, upfirdn2d_cuda, upfirdn2d_grad_config, upfirdn2d_ref

__all__ = [
    "KERNEL_DIR",
    "MAX_FIR_SIDE",
    "PLUGIN_DOMAIN",
    "PLUGIN_NAMESPACE",
    "PLUGIN_VERSION",
    "SOURCES",
    "SQRT2",
    "FusedLeakyReLU",
    "Impl",
    "default_impl",
    "export_plugin_nodes",
    "fused_leaky_relu",
    "fused_leaky_relu_cuda",
    "fused_leaky_relu_ref",
    "is_loaded",
    "load",
    "make_kernel",
    "missing_requirement",
    "parse_pad",
    "register_cuda_impl",
    "set_default_impl",
    "unavailable_reason",
    "unregister_cuda_impl",
    "upfirdn2d",
    "upfirdn2d_cuda",
    "upfirdn2d_grad_config",
    "upfirdn2d_ref",
]
