"""The ops the StyleGAN2 layers call, re-exported from :mod:`cptr.ops` (where each op's reference,
CUDA kernel, loader and export symbolic live). Kept so ``from cptr.models.ops import ...`` works."""

from cptr.ops import (
    SQRT2,
    FusedLeakyReLU,
    Impl,
    default_impl,
    fused_leaky_relu,
    fused_leaky_relu_ref,
    make_kernel,
    parse_pad,
    register_cuda_impl,
    set_default_impl,
    unregister_cuda_impl,
    upfirdn2d,
    upfirdn2d_ref,
)

__all__ = [
    "SQRT2",
    "FusedLeakyReLU",
    "Impl",
    "default_impl",
    "fused_leaky_relu",
    "fused_leaky_relu_ref",
    "make_kernel",
    "parse_pad",
    "register_cuda_impl",
    "set_default_impl",
    "unregister_cuda_impl",
    "upfirdn2d",
    "upfirdn2d_ref",
]
