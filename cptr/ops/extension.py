"""The loader of the CUDA kernels: builds ``torch_ext.cpp`` with the ops' ``.cu`` sources (this folder).

:func:`load` builds the extension with :func:`torch.utils.cpp_extension.load` the first time it runs
on a CUDA machine, then registers :func:`~cptr.ops.upfirdn2d.upfirdn2d_cuda` and
:func:`~cptr.ops.bias_act.fused_leaky_relu_cuda` so that :func:`cptr.ops.upfirdn2d` and
:func:`cptr.ops.fused_leaky_relu` run them on CUDA tensors. Without CUDA (or without a CUDA compiler)
it returns ``False`` and the reference ops stay in use::

    import cptr.ops
    if not cptr.ops.load():
        print("reference ops:", cptr.ops.unavailable_reason())

The same ``.cu`` files are compiled into the TensorRT plugins by ``cptr/export/plugins/CMakeLists.txt``.
The compiled module is cached by PyTorch (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) and rebuilt only when a source changes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType

import torch

from cptr.ops.dispatch import register_cuda_impl

KERNEL_DIR = Path(__file__).resolve().parent
SOURCES = ("torch_ext.cpp", "upfirdn2d.cu", "bias_act.cu")
EXTENSION_NAME = "cptr_kernels_ext"

_lock = threading.Lock()
_state: dict[str, object] = {"ext": None, "reason": "cptr.ops.load() has not been called"}


def unavailable_reason() -> str | None:
    """Why the compiled kernels are not in use, or ``None`` once :func:`load` succeeded."""
    return None if _state["ext"] is not None else str(_state["reason"])


def is_loaded() -> bool:
    """True once the extension is built and registered."""
    return _state["ext"] is not None


def extension() -> ModuleType:
    """The built extension module (``upfirdn2d``, ``bias_leaky_relu``, ``bias_leaky_relu_grad``)."""
    ext = _state["ext"]
    if ext is None:
        raise RuntimeError(f"the CPTR CUDA kernels are not loaded: {unavailable_reason()}. Call cptr.ops.load() first.")
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
                    sources=[str(KERNEL_DIR / s) for s in SOURCES],
                    extra_include_paths=[str(KERNEL_DIR)],
                    extra_cflags=["-O3"],
                    extra_cuda_cflags=["-O3"],
                    verbose=verbose,
                )
            except Exception as exc:  # compiler missing or failing: report, keep the reference ops
                reason = f"building the CUDA extension failed: {type(exc).__name__}: {exc}"
            else:
                from cptr.ops.bias_act import fused_leaky_relu_cuda  # import cycle: that module imports this one
                from cptr.ops.upfirdn2d import upfirdn2d_cuda  # import cycle: that module imports this one

                _state["ext"], _state["reason"] = ext, None
                register_cuda_impl(upfirdn2d=upfirdn2d_cuda, fused_leaky_relu=fused_leaky_relu_cuda)
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
    missing = [s for s in SOURCES if not (KERNEL_DIR / s).is_file()]
    if missing:
        return f"kernel sources missing from {KERNEL_DIR}: {missing}"
    return None
