"""ONNX Runtime implementations of the plugin nodes, so plugin graphs are verified like any other.

TensorRT maps ``UpFirDn2d`` and ``FusedBiasLeakyReLU`` nodes to the CUDA plugins in
``cptr/export/plugins`` (built from the kernels in ``cptr/ops``); their attributes are the plugins'
fields, written by the export symbolics in :mod:`cptr.ops.upfirdn2d` and :mod:`cptr.ops.bias_act`:

``UpFirDn2d(x[N,C,H,W]) -> y``: ints ``up``, ``down``, ``pad0``, ``pad1``, ``kh``, ``kw`` and floats
``kernel`` (kh*kw taps, row-major, applied as a true convolution).
``FusedBiasLeakyReLU(x[N,C,H,W], bias[C]) -> y``: floats ``negative_slope``, ``scale``.

ONNX Runtime runs the same nodes through onnxruntime-extensions Python custom ops that call the
reference PyTorch implementation. Those ops cannot read array attributes, so :func:`ort_view`
rewrites a copy of the graph with each ``kernel`` moved into a constant input; the graph that
TensorRT reads is never changed. :func:`cptr.engines.onnxruntime.ort_session` does this for any file
with plugin nodes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cptr.ops import fused_leaky_relu_ref, upfirdn2d_ref

PLUGIN_OPS = ("UpFirDn2d", "FusedBiasLeakyReLU")
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
            attrs={
                "up": PyCustomOpDef.dt_int64,
                "down": PyCustomOpDef.dt_int64,
                "pad0": PyCustomOpDef.dt_int64,
                "pad1": PyCustomOpDef.dt_int64,
                **strings,
            },
        )
        def _upfirdn2d(x: np.ndarray, kernel: np.ndarray, **attrs) -> np.ndarray:
            y = upfirdn2d_ref(
                torch.from_numpy(np.ascontiguousarray(x)),
                torch.from_numpy(np.ascontiguousarray(kernel)),
                up=int(attrs["up"]),
                down=int(attrs["down"]),
                pad=(int(attrs["pad0"]), int(attrs["pad1"])),
            )
            return y.numpy()

        @onnx_op(
            op_type="FusedBiasLeakyReLU",
            inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
            outputs=[PyCustomOpDef.dt_float],
            attrs={"negative_slope": PyCustomOpDef.dt_float, "scale": PyCustomOpDef.dt_float, **strings},
        )
        def _bias_act(x: np.ndarray, bias: np.ndarray, **attrs) -> np.ndarray:
            y = fused_leaky_relu_ref(
                torch.from_numpy(np.ascontiguousarray(x)),
                torch.from_numpy(np.ascontiguousarray(bias)),
                _exact(float(attrs["negative_slope"])),
                _exact(float(attrs["scale"])),
            )
            return y.numpy()

        _REGISTERED.extend(PLUGIN_OPS)
    return get_library_path()


def ort_view(model):
    """A copy of a plugin-node ``onnx.ModelProto`` that ONNX Runtime's Python ops can run."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, node in enumerate(out.graph.node):
        if node.op_type != "UpFirDn2d":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = np.asarray(attrs["kernel"], np.float32).reshape(attrs["kh"], attrs["kw"])
        name = f"{node.name or 'upfirdn2d'}_{i}_kernel"
        out.graph.initializer.append(numpy_helper.from_array(kernel, name))
        node.input.append(name)
        keep = [a for a in node.attribute if a.name not in ("kernel", "kh", "kw")]
        del node.attribute[:]
        node.attribute.extend(keep)
    return out


def has_plugin_nodes(model_path: str) -> bool:
    """True when an ONNX file contains CPTR plugin nodes."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    return any(n.op_type in PLUGIN_OPS for n in model.graph.node)
