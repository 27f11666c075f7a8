"""TensorRT engine builder: ONNX file -> serialized plan (``.plan``) with one batch profile.

``tensorrt`` is imported only when an engine is built, so this module imports everywhere. Graphs
with CPTR plugin nodes (``UpFirDn2d``, ``FusedBiasLeakyReLU``) need the plugin library built from
``cptr/export/plugins`` (see docs/gpu-engines.md)::

    from cptr.engines.tensorrt import build_engine
    meta = build_engine("synthesis.onnx", "model.plan", profile=(1, 4, 16), fp16=True,
                        timing_cache="trt.cache", plugin_library="build/plugins/libcptr_trt_plugins.so")

TensorRT 10 builds weakly typed networks: ``fp16=True`` lets it pick fp16 kernels. TensorRT 11 builds
strongly typed networks only (no FP16 builder flag): the engine computes in the ONNX graph's dtypes,
so export an fp16 graph to get an fp16 engine; the returned metadata says which mode was used.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from cptr.io import atomic_write_bytes, sha256_file

PLUGIN_LIBRARY_ENV = "CPTR_TRT_PLUGINS"
# CMakeLists.txt of the plugin library; it compiles the kernel sources of cptr/ops/ (cptr.ops.KERNEL_DIR)
PLUGIN_SOURCES = Path(__file__).resolve().parent / "plugins"

INSTALL_HINT = (
    "TensorRT is not installed. Build engines on a machine with an NVIDIA GPU, either inside an NGC "
    "TensorRT or Triton container (nvcr.io/nvidia/tensorrt:<yy.mm>-py3, nvcr.io/nvidia/tritonserver:<yy.mm>-py3; "
    "Triton's TensorRT version then matches the engine), or with `pip install tensorrt` (NVIDIA's wheels, served "
    "from pypi.nvidia.com) on a CUDA machine. ONNX export itself does not need TensorRT: use --engine onnx."
)


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a GPU for it) is missing; the message says what to install."""


class EngineBuildError(RuntimeError):
    """The ONNX graph could not be parsed or built into an engine."""


def import_tensorrt() -> ModuleType:
    """``import tensorrt`` with an actionable error when it is missing."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(f"{INSTALL_HINT} (import error: {exc})") from None
    return tensorrt


def trt_major(trt: ModuleType) -> int:
    """Major version of an imported tensorrt module (``"10.8.0.43"`` -> 10)."""
    return int(str(trt.__version__).split(".")[0])


def default_plugin_library() -> Path | None:
    """The plugin library named by ``$CPTR_TRT_PLUGINS``, if set."""
    env = os.environ.get(PLUGIN_LIBRARY_ENV)
    return Path(env).expanduser() if env else None


def load_plugins(plugin_library: str | os.PathLike[str], trt: ModuleType | None = None, logger: Any = None) -> Path:
    """Make the CPTR plugin creators visible to TensorRT in this process (builder and runtime).

    Accepts either build of the library: ``libcptr_trt_plugins.so`` registers itself when loaded;
    ``libcptr_trt_plugins_dynamic.so`` is registered through the plugin registry's ``load_library``.
    Raises :class:`EngineBuildError` when the creators are still missing afterwards.
    """
    trt = trt or import_tensorrt()
    path = Path(plugin_library).expanduser().resolve()
    if not path.is_file():
        raise EngineBuildError(
            f"TensorRT plugin library {path} does not exist. Build it with: cmake -S cptr/export/plugins -B build/plugins "
            "-DTENSORRT_ROOT=<TensorRT prefix> && cmake --build build/plugins -j"
        )
    registry = trt.get_plugin_registry()
    trt.init_libnvinfer_plugins(logger or trt.Logger(trt.Logger.WARNING), "")
    if _missing_creators(trt, registry):
        handle = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)  # self-registering build registers here
        if _missing_creators(trt, registry) and hasattr(handle, "getCreators"):
            registry.load_library(str(path))
    missing = _missing_creators(trt, registry)
    if missing:
        from cptr.ops.dispatch import PLUGIN_NAMESPACE, PLUGIN_VERSION  # torch: only when this runs (the module is imported without it)

        raise EngineBuildError(
            f"{path} did not register the plugin creators {missing} (namespace {PLUGIN_NAMESPACE!r}, version "
            f"{PLUGIN_VERSION!r}); was it built from cptr/export/plugins (with the kernels of cptr/ops) for this TensorRT version ({trt.__version__})?"
        )
    return path


def _missing_creators(trt: ModuleType, registry: Any) -> list[str]:
    from cptr.engines.plugin_ops import PLUGIN_OPS  # torch: only when this runs (the module is imported without it)
    from cptr.ops.dispatch import PLUGIN_NAMESPACE, PLUGIN_VERSION  # torch: only when this runs (the module is imported without it)

    get = getattr(registry, "get_creator", None) or registry.get_plugin_creator
    return [op for op in PLUGIN_OPS if get(op, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None]


def _check_profile(profile: Sequence[int]) -> tuple[int, int, int]:
    if len(profile) != 3:
        raise ValueError(f"profile must be (min, opt, max) batch sizes, got {profile!r}")
    lo, opt, hi = (int(v) for v in profile)
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"profile must satisfy 1 <= min <= opt <= max, got {profile!r}")
    return lo, opt, hi


def _gpu_name() -> tuple[str, str]:
    """(name, compute capability) of CUDA device 0, as far as torch can tell."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return torch.cuda.get_device_name(0), f"{major}.{minor}"
    except Exception:  # noqa: BLE001 - metadata only
        pass
    return "unknown", "unknown"


def build_engine(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    profile: Sequence[int] = (1, 1, 8),
    fp16: bool = True,
    timing_cache: str | os.PathLike[str] | None = None,
    plugin_library: str | os.PathLike[str] | None = None,
    workspace_mib: int | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Build a TensorRT engine from ``onnx_path`` and write it atomically to ``plan_path``.

    ``profile`` is the (min, opt, max) batch size of one optimization profile; dimension 0 of every
    input is the batch, the other dimensions must be static in the ONNX graph. ``timing_cache`` is
    read if it exists and written back after the build. ``plugin_library`` (default
    ``$CPTR_TRT_PLUGINS``) is required when the graph has CPTR plugin nodes. Returns metadata:
    TensorRT version, GPU, profile, precision mode, inputs/outputs, plugins, hashes, build time.
    """
    from cptr.engines.plugin_ops import PLUGIN_OPS, has_plugin_nodes  # torch: only when this runs (the module is imported without it)

    lo, opt, hi = _check_profile(profile)
    onnx_path = Path(onnx_path).expanduser().resolve()
    plan_path = Path(plan_path).expanduser().resolve()
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist; export it first with cptr-export --engine onnx")
    trt = import_tensorrt()

    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    uses_plugins = has_plugin_nodes(str(onnx_path))
    plugin_path: Path | None = None
    if uses_plugins:
        if trt_major(trt) < 10:
            raise TensorRTUnavailable(f"CPTR plugins are IPluginV3 and need TensorRT >= 10, found {trt.__version__}")
        lib = plugin_library if plugin_library is not None else default_plugin_library()
        if lib is None:
            raise EngineBuildError(
                f"{onnx_path.name} has plugin nodes ({', '.join(PLUGIN_OPS)}): pass plugin_library=<path to "
                f"libcptr_trt_plugins.so> or set ${PLUGIN_LIBRARY_ENV}, or export without plugins"
            )
        plugin_path = load_plugins(lib, trt, logger)
    else:
        trt.init_libnvinfer_plugins(logger, "")

    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # noqa: BLE001 - TensorRT raises plain errors without a GPU
        raise TensorRTUnavailable(f"TensorRT could not create a builder (is an NVIDIA GPU visible?): {exc}") from exc
    if builder is None:
        raise TensorRTUnavailable("TensorRT could not create a builder (is an NVIDIA GPU visible and the driver loaded?)")
    flags = 0
    if trt_major(trt) < 10 and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    fp16_flag = getattr(trt.BuilderFlag, "FP16", None)
    if fp16 and fp16_flag is not None:
        config.set_flag(fp16_flag)
        precision = "fp16 allowed (weakly typed)"
    elif fp16_flag is None:
        precision = "strongly typed: as in the ONNX graph"
    else:
        precision = "fp32"

    opt_profile = builder.create_optimization_profile()
    inputs: dict[str, dict[str, Any]] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        if len(shape) == 0:
            raise EngineBuildError(f"input {tensor.name!r} is a scalar; CPTR engines expect a batch dimension")
        if any(d < 0 for d in shape[1:]):
            raise EngineBuildError(f"input {tensor.name!r} has dynamic non-batch dimensions {shape}; export with static shapes")
        opt_profile.set_shape(tensor.name, [lo, *shape[1:]], [opt, *shape[1:]], [hi, *shape[1:]])
        inputs[tensor.name] = {"shape": [-1, *shape[1:]], "dtype": str(tensor.dtype).split(".")[-1]}
    config.add_optimization_profile(opt_profile)
    outputs = {
        network.get_output(i).name: {
            "shape": list(network.get_output(i).shape),
            "dtype": str(network.get_output(i).dtype).split(".")[-1],
        }
        for i in range(network.num_outputs)
    }

    cache_path = Path(timing_cache).expanduser().resolve() if timing_cache is not None else None
    cache = None
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, False)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write_bytes(plan_path, memoryview(serialized))
    if cache_path is not None and cache is not None:
        atomic_write_bytes(cache_path, memoryview(config.get_timing_cache().serialize()))

    gpu, capability = _gpu_name()
    return {
        "tensorrt_version": str(trt.__version__),
        "gpu": gpu,
        "compute_capability": capability,
        "profile": {"min": lo, "opt": opt, "max": hi},
        "precision": precision,
        "fp16_requested": bool(fp16),
        "inputs": inputs,
        "outputs": outputs,
        "plugins": list(PLUGIN_OPS) if uses_plugins else [],
        "plugin_library": str(plugin_path) if plugin_path else None,
        "onnx": str(onnx_path),
        "onnx_sha256": sha256_file(onnx_path),
        "plan": str(plan_path),
        "plan_sha256": sha256_file(plan_path),
        "plan_bytes": plan_path.stat().st_size,
        "timing_cache": str(cache_path) if cache_path else None,
        "build_seconds": round(build_seconds, 3),
    }
