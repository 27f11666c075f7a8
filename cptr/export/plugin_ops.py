"""ONNX Runtime implementations of the plugin nodes, so plugin graphs are verified like any other.

TensorRT maps ``UpFirDn2d`` and ``FusedBiasLeakyReLU`` nodes to the CUDA plugins in
``cptr/export/plugins``; ONNX Runtime runs the same nodes through onnxruntime-extensions Python
custom ops that call the reference PyTorch implementation. Both read the same attributes:

``UpFirDn2d(x[N,C,H,W], kernel[kh,kw]) -> y``: ints ``up``, ``down``, ``pad0``, ``pad1`` (both axes).
``FusedBiasLeakyReLU(x[N,C,H,W], bias[C]) -> y``: floats ``slope``, ``gain``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cptr.models.ops import fused_leaky_relu_ref, upfirdn2d_ref

_REGISTERED: list[str] = []


def _exact(value: float) -> float:
    """Undo onnxruntime-extensions' 6-significant-digit float attributes for the constants we emit.

    TensorRT reads the exact float32 attribute; the Python op gets e.g. 1.41421 for sqrt(2).
    """
    for const in (math.sqrt(2.0), 0.2, 1.0):
        if math.isclose(value, const, rel_tol=5e-6):
            return const
    return value


def custom_ops_library() -> str:
    """Path of the onnxruntime-extensions library holding the registered Python ops."""
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "running plugin-node ONNX graphs in ONNX Runtime needs onnxruntime-extensions: pip install 'cptr[export]'"
        ) from e
    if not _REGISTERED:
        strings = {"plugin_namespace": PyCustomOpDef.dt_string, "plugin_version": PyCustomOpDef.dt_string}

        @onnx_op(
            op_type="UpFirDn2d",
            inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
            outputs=[PyCustomOpDef.dt_float],
            attrs={"up": PyCustomOpDef.dt_int64, "down": PyCustomOpDef.dt_int64, "pad0": PyCustomOpDef.dt_int64,
                   "pad1": PyCustomOpDef.dt_int64, **strings},
        )
        def _upfirdn2d(x: np.ndarray, kernel: np.ndarray, **attrs) -> np.ndarray:
            y = upfirdn2d_ref(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(kernel)),
                              up=int(attrs["up"]), down=int(attrs["down"]), pad=(int(attrs["pad0"]), int(attrs["pad1"])))
            return y.numpy()

        @onnx_op(
            op_type="FusedBiasLeakyReLU",
            inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
            outputs=[PyCustomOpDef.dt_float],
            attrs={"slope": PyCustomOpDef.dt_float, "gain": PyCustomOpDef.dt_float, **strings},
        )
        def _bias_act(x: np.ndarray, bias: np.ndarray, **attrs) -> np.ndarray:
            y = fused_leaky_relu_ref(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(bias)),
                                     _exact(float(attrs["slope"])), _exact(float(attrs["gain"])))
            return y.numpy()

        _REGISTERED.extend(["UpFirDn2d", "FusedBiasLeakyReLU"])
    return get_library_path()


def has_plugin_nodes(model_path: str) -> bool:
    """True when an ONNX file contains CPTR plugin nodes."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    return any(n.op_type in ("UpFirDn2d", "FusedBiasLeakyReLU") for n in model.graph.node)
