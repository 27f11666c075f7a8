"""ONNX Runtime sessions with the CPU options that measured fastest for CPTR graphs.

Every consumer (export verification, the Python-backend models, benchmarks) opens ONNX files through
:func:`ort_session`, so a tuning change lands everywhere at once. Findings on a 2-core AVX-512 CPU
(benchmarks/RESULTS.md, "ONNX export"): full graph optimisation (which enables the NCHWc conv layout
transform on AVX-512) and one intra-op thread per *physical* core matter; inter-op parallelism and
spinning threads do not help these sequential conv chains.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once); at least 1."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(), topo.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))


def _has_plugin_nodes(path: str) -> bool:
    try:
        from cptr.engines.plugin_ops import has_plugin_nodes  # torch: only when this runs (the module is imported without it)
    except ImportError:
        return False
    return has_plugin_nodes(path)


def session_options(threads: int | None = None, optimized_model_path: str | os.PathLike | None = None, spin: bool = False):
    """``onnxruntime.SessionOptions`` tuned for CPTR graphs (see the module docstring)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads) if threads else physical_cores()
    so.inter_op_num_threads = 1
    so.enable_cpu_mem_arena = True
    so.enable_mem_pattern = True
    # Spinning worker threads burn a core between requests; a served model is mostly idle.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3  # errors only: constant-folding notes on fp16 graphs are noise
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
    return so


def ort_session(
    path: str | os.PathLike | bytes,
    threads: int | None = None,
    providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
    spin: bool = False,
    optimized_model_path: str | os.PathLike | None = None,
):
    """An ``onnxruntime.InferenceSession`` for an ONNX file (or serialized model bytes).

    Graphs with CPTR plugin nodes (``UpFirDn2d``, ``FusedBiasLeakyReLU``; see
    :mod:`cptr.engines.plugin_ops`) run with the reference custom ops registered.
    ``threads``: intra-op threads (default: physical cores). ``providers``: default CPU only; pass
    e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` on a GPU machine. ``spin=True`` keeps
    worker threads spinning between runs (lower latency in tight benchmark loops, more CPU use).
    """
    import onnxruntime as ort

    so = session_options(threads, optimized_model_path, spin)
    model = path if isinstance(path, bytes) else str(path)
    if isinstance(model, str) and _has_plugin_nodes(model):  # CPTR TensorRT plugin nodes: reference custom ops
        import onnx

        from cptr.engines.plugin_ops import custom_ops_library, ort_view  # torch: only when this runs (the module is imported without it)

        so.register_custom_ops_library(custom_ops_library())
        model = ort_view(onnx.load(model)).SerializeToString()
    return ort.InferenceSession(model, sess_options=so, providers=list(providers or ["CPUExecutionProvider"]))
