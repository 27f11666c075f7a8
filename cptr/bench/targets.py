"""Benchmark targets: each turns a workload into one or more engines that run it.

An :class:`Engine` runs one stage: ``prepare`` (untimed: put the inputs where the engine wants
them), ``run`` (timed), ``synchronize`` (timed: wait for the device), ``to_numpy`` (untimed). A
:class:`Target` yields engines, or an :class:`Unavailable` that says why it cannot run here (a
missing module, no CUDA, no TensorRT), so one missing engine never stops the others.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cptr import ops
from cptr.bench.workloads import Workload, _mapping, _synthesis
from cptr.engines.onnxruntime import ort_session
from cptr.engines.torch_aot import build_torch_engine, load_torch_engine
from cptr.export.onnx import export_stage
from cptr.models import set_fused_modconv
from cptr.serving.stages import decode_and_align, mix_latents, seed_latents


@dataclass
class Unavailable:
    """An engine that cannot run here, and why (``failed=True``: it should have, but its build broke)."""

    name: str
    target: str
    reason: str
    failed: bool = False


@dataclass
class Context:
    """Run-wide settings the targets read."""

    device: str = "cpu"  # "cpu" | "cuda"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cptr-bench-")))
    threads: int | None = None
    batch_max: int = 32
    batches: tuple[int, ...] = (1,)  # the run's batch sizes (the static OpenVINO server engines compile these)
    url: str | None = None  # triton: a running server; None starts the embedded one
    protocol: str = "grpc"
    shm: bool = False
    style: str = "demo"  # triton with --url: the served style
    triton_engines: tuple[str, ...] = ("onnx",)  # triton: the engine inside the embedded server (one server each)
    quick: bool = False
    log: Any = None  # callable(str) for progress notes, or None


class Engine:
    """One way of running a workload. Subclasses override ``prepare``/``run``/``to_numpy``."""

    name: str = "engine"
    target: str = "?"
    precision: str = "fp32"
    device: str = "cpu"
    note: str = ""
    concurrent: bool = False  # True: ``worker()`` gives independent clients for concurrent requests
    max_batch: int | None = None  # largest batch the engine accepts (None: no limit)

    def prepare(self, feeds: dict[str, np.ndarray]) -> Any:
        return feeds

    def run(self, prepared: Any) -> Any:
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until the work queued by ``run`` is done (GPU engines)."""

    def to_numpy(self, out: Any) -> np.ndarray:
        return np.asarray(out, dtype=np.float32)

    def worker(self) -> Engine:
        """An engine to use from one more thread (concurrency > 1)."""
        return self

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Release what the engine holds (sessions, servers)."""


class Target:
    """A family of engines: ``name`` (the ``--target`` value) and a one-line ``description``, given
    as class keywords: ``class OnnxTarget(Target, name="onnx", description="...")``."""

    name: str
    description: str

    def __init_subclass__(cls, name: str, description: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.description = name, description

    def engines(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        """The family's engines for ``workload``, each an :class:`Engine` or an :class:`Unavailable`
        saying why it cannot run here; one :class:`Unavailable` when :meth:`missing` rules out all."""
        reason = self.missing(workload, ctx)
        if reason is not None:
            yield Unavailable(self.name, self.name, reason)
            return
        yield from self.build(workload, ctx)

    def missing(self, workload: Workload, ctx: Context) -> str | None:
        """Why no engine of the family can run ``workload`` here (None: :meth:`build` may)."""
        return None

    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        raise NotImplementedError


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- torch eager


class TorchEngine(Engine):
    """Eager PyTorch. fp16 runs the module in half, with fp32 at the boundary.

    ``impl`` picks the custom ops for every call: ``"ref"`` (the reference ops) or ``"cuda"`` (the
    compiled kernels of :mod:`cptr.ops`), so engines measured in turn never leak into each other.
    """

    target = "torch"

    def __init__(
        self, workload: Workload, module: nn.Module, name: str, device: str, precision: str, note: str = "", impl: ops.Impl = "ref"
    ):
        self.names = [s.name for s in workload.inputs]
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.module = module.to(device=device, dtype=self.dtype).eval()
        self.name, self.device, self.precision, self.note, self.impl = name, device, precision, note, impl

    def prepare(self, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.names]

    def run(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        with ops.default_impl(self.impl), torch.inference_mode():
            return self.module(*[t.to(self.dtype) if t.is_floating_point() else t for t in prepared]).float()

    def synchronize(self) -> None:
        _sync(self.device)

    def to_numpy(self, out: torch.Tensor) -> np.ndarray:
        return out.cpu().numpy()

    def info(self) -> dict[str, Any]:
        return {"torch_threads": torch.get_num_threads()}

    @classmethod
    def each_precision(cls, workload: Workload, ctx: Context, prefix: str, note: str, impl: ops.Impl) -> Iterator[TorchEngine]:
        """One engine per precision (fp32, then fp16), ``<prefix>-<precision>``, each on its own copy of the module."""
        for precision in ("fp32", "fp16"):
            yield cls(workload, copy.deepcopy(workload.module), f"{prefix}-{precision}", ctx.device, precision, note, impl=impl)


class PythonEngine(Engine):
    """The stage's own in-process Python/NumPy function (face alignment)."""

    target = "torch"

    def __init__(self, workload: Workload):
        self.fn, self.names = workload.module, [s.name for s in workload.inputs]
        if workload.stage == "pipeline":
            self.name, self.note = "torch-fp32", "in process: align (NumPy/MediaPipe) + eager torch encoder and synthesis"
        else:
            self.name, self.note = "python", "in-process, the function the serving model runs"

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.fn(*[feeds[n] for n in self.names])


class TorchTarget(
    Target,
    name="torch",
    description="eager PyTorch, reference ops (fp32; fp16 on CUDA) and, on CUDA, with the compiled CPTR kernels; "
    "in-process Python for alignment",
):
    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        if not workload.is_torch:
            yield PythonEngine(workload)
            return
        yield TorchEngine(
            workload,
            copy.deepcopy(workload.module),
            "torch-fp32",
            ctx.device,
            "fp32",
            "as constructed (rosinality's fused modulated conv)" if workload.generator is not None else "",
        )
        if workload.stage == "synthesis" and workload.generator is not None:
            module = set_fused_modconv(copy.deepcopy(workload.module), False)
            yield TorchEngine(workload, module, "torch-fp32-shared", ctx.device, "fp32", "shared-weight modulated conv (the export form)")
        if not ctx.device.startswith("cuda"):
            yield Unavailable("torch-fp16", self.name, "fp16 eager runs on CUDA only; no GPU on this machine")
            return
        yield TorchEngine(workload, copy.deepcopy(workload.module), "torch-fp16", ctx.device, "fp16")
        yield from self._kernel_engines(workload, ctx)

    def _kernel_engines(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        """Eager fp32/fp16 with upfirdn2d and bias-act replaced by the compiled CPTR CUDA kernels."""
        missing = ops.missing_requirement()  # a machine that cannot build them: unavailable
        if missing is None and ctx.log:
            ctx.log("building the CPTR CUDA kernels (first run only)")
        if missing is not None or not ops.load():  # otherwise the build broke: failed
            reason = missing or ops.unavailable_reason() or "unknown"
            for precision in ("fp32", "fp16"):
                yield Unavailable(f"torch-kernels-{precision}", self.name, reason, failed=missing is None)
            return
        yield from TorchEngine.each_precision(
            workload, ctx, "torch-kernels", "eager with the CPTR CUDA kernels (upfirdn2d, fused bias-act)", impl="cuda"
        )


# --------------------------------------------------------------------------- ONNX Runtime


class OrtEngine(Engine):
    """An ONNX Runtime session (optimised options from :mod:`cptr.engines.onnxruntime`)."""

    target = "onnx"

    def __init__(
        self,
        path: Path,
        workload: Workload,
        name: str,
        precision: str,
        providers: list[str],
        threads: int | None,
        spin: bool = False,
        note: str = "",
    ):
        self.session = ort_session(path, threads=threads, providers=providers, spin=spin)
        self.names = [s.name for s in workload.inputs]
        self.output = workload.output.name
        self.name, self.precision, self.note = name, precision, note
        self.device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        self.path = path

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: np.ascontiguousarray(feeds[n]) for n in self.names}

    def run(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], prepared)[0]

    def info(self) -> dict[str, Any]:
        opts = self.session.get_session_options()
        return {
            "providers": self.session.get_providers(),
            "intra_op_threads": opts.intra_op_num_threads,
            "model_bytes": self.path.stat().st_size,
        }


class OrtGenerateEngine(Engine):
    """The ``generate`` ensemble in one process: seeds -> z (NumPy), mapping and synthesis in ORT."""

    target = "onnx"

    def __init__(self, mapping: OrtEngine, synthesis: OrtEngine, workload: Workload, name: str, note: str):
        self.mapping, self.synthesis = mapping, synthesis
        self._seed_latents, self._mix_latents = seed_latents, mix_latents
        self.style_dim, self.n_latent = workload.generator.style_dim, workload.generator.n_latent
        self.name, self.precision, self.device, self.note = name, synthesis.precision, synthesis.device, note

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        mix = feeds["mix"]
        z = np.concatenate([self._seed_latents(feeds["seed"], self.style_dim), self._seed_latents(mix[:, 0], self.style_dim)])
        w = self.mapping.run({"z": z})  # the served mapping: truncation fixed
        b = feeds["seed"].shape[0]
        w_plus = self._mix_latents(w[:b], w[b:], mix, self.n_latent)
        return self.synthesis.run({"w_plus": w_plus})

    def info(self) -> dict[str, Any]:
        return self.synthesis.info()


class OrtPipelineEngine(Engine):
    """The ``cartoonize`` ensemble in one process: decode + align, then encoder and synthesis in ORT."""

    target = "onnx"

    def __init__(
        self,
        encoder_path: Path,
        synthesis_path: Path,
        name: str,
        precision: str,
        providers: list[str],
        threads: int | None,
        spin: bool,
        note: str,
    ):
        self.encoder = ort_session(encoder_path, threads=threads, providers=providers, spin=spin)
        self.synthesis = ort_session(synthesis_path, threads=threads, providers=providers, spin=spin)
        self._align = decode_and_align
        self.name, self.precision, self.note = name, precision, note
        self.device = "cuda" if "CUDAExecutionProvider" in self.synthesis.get_providers() else "cpu"

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        crops = np.stack([self._align(bytes(b))[1] for b in feeds["image_bytes"].reshape(-1)])
        w_plus = self.encoder.run(None, {"aligned": crops})[0]
        return self.synthesis.run(None, {"w_plus": w_plus})[0]

    def info(self) -> dict[str, Any]:
        return {"providers": self.synthesis.get_providers()}


def export_onnx(workload: Workload, precision: str, ctx: Context, stage: str | None = None) -> Path:
    """The ONNX file of one of the workload's catalogue stages (default: the workload's own), as
    ``cptr-export`` writes it, in the run's work folder (cached)."""
    key = stage or workload.stage
    if key not in workload.stages:
        raise RuntimeError(f"no ONNX export for stage {key!r}")
    name = key if key == workload.stage else f"{workload.stage}-{key}"
    path = ctx.workdir / f"{name}-{precision}.onnx"
    if path.is_file():
        return path

    export_stage(workload.stages[key], path, precision, verify=False)
    return path


class OnnxTarget(
    Target, name="onnx", description="ONNX Runtime (CUDA provider when present, else CPU): fp32, fp32 with spinning threads, fp16"
):
    def missing(self, workload: Workload, ctx: Context) -> str | None:
        absent = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if absent:
            return f"{', '.join(absent)} not installed: pip install 'cptr[export]'"
        if importlib.util.find_spec("cptr.export.onnx") is None or importlib.util.find_spec("cptr.engines.onnxruntime") is None:
            return "cptr.export.onnx / cptr.engines.onnxruntime are missing from this checkout"
        return None if workload.stages else f"no ONNX export for stage {workload.stage!r}"

    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        import onnxruntime as ort

        cuda = ctx.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        where = "CUDA provider" if cuda else "CPU provider"
        variants = [("onnx-fp32", "fp32", False, f"{where}, cptr.engines.onnxruntime options")]
        if not cuda:
            variants.append(("onnx-fp32-spin", "fp32", True, "CPU provider, worker threads spin between runs"))
        variants.append(("onnx-fp16", "fp16", False, f"{where}, fp16 compute, fp32 I/O"))
        for name, precision, spin, note in variants:
            try:
                if workload.stage == "generate":
                    yield self._generate(workload, ctx, name, precision, providers, spin, note)
                    continue
                if workload.stage == "pipeline":
                    yield self._pipeline(workload, ctx, name, precision, providers, spin, note)
                    continue
                path = export_onnx(workload, precision, ctx)
                yield OrtEngine(path, workload, name, precision, providers, ctx.threads, spin, note)
            except Exception as e:  # noqa: BLE001 - report and go on with the other engines
                yield Unavailable(name, self.name, f"export/session failed: {type(e).__name__}: {_first_line(e)}", failed=True)

    @staticmethod
    def _generate(workload: Workload, ctx: Context, name: str, precision: str, providers: list[str], spin: bool, note: str) -> Engine:
        g, desc = workload.generator, workload.info["description"]
        parts = []
        for stage_wl in (_mapping(g, workload.model_name, desc), _synthesis(g, workload.model_name, desc)):
            path = export_onnx(workload, precision, ctx, stage_wl.stage)
            parts.append(OrtEngine(path, stage_wl, f"{name}-{stage_wl.stage}", precision, providers, ctx.threads, spin))
        return OrtGenerateEngine(parts[0], parts[1], workload, name, f"{note}; seeds and mixing in NumPy, in process")

    @staticmethod
    def _pipeline(workload: Workload, ctx: Context, name: str, precision: str, providers: list[str], spin: bool, note: str) -> Engine:
        enc_path, syn_path = (export_onnx(workload, precision, ctx, key) for key in ("encoder", "synthesis"))
        return OrtPipelineEngine(
            enc_path, syn_path, name, precision, providers, ctx.threads, spin, f"{note}; align in NumPy/MediaPipe, in process"
        )


# --------------------------------------------------------------------------- compiled torch engine


class CompiledTorchEngine(Engine):
    """An AOTInductor package from :mod:`cptr.engines.torch_aot`."""

    target = "torch-engine"

    def __init__(self, fn: Any, workload: Workload, name: str, device: str, precision: str, meta: dict[str, Any]):
        self.fn, self.meta = fn, meta
        self.names = [s.name for s in workload.inputs]
        self.name, self.device, self.precision = name, device, precision
        self.note = f"AOTInductor, built in {meta.get('build_seconds', '?')} s"

    def prepare(self, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.names]

    def run(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(*prepared)

    def synchronize(self) -> None:
        _sync(self.device)

    def to_numpy(self, out: torch.Tensor) -> np.ndarray:
        return out.float().cpu().numpy()

    def info(self) -> dict[str, Any]:
        return dict(self.meta)


class TorchEngineTarget(Target, name="torch-engine", description="compiled PyTorch engine (torch.export + AOTInductor); fp16 on CUDA"):
    @staticmethod
    def _module(workload: Workload) -> nn.Module:
        """The module ``cptr-export --engine torch`` compiles for this stage (the catalogue's served module)."""
        return copy.deepcopy(workload.stages[workload.stage].served_module)

    def missing(self, workload: Workload, ctx: Context) -> str | None:
        if importlib.util.find_spec("cptr.engines.torch_aot") is None:
            return "cptr.engines.torch_aot is missing from this checkout"
        if workload.stage not in ("synthesis", "mapping", "encoder", "mapper"):
            return f"stage {workload.stage!r} is not one torch module; use --stage synthesis, mapping, encoder or mapper"
        return None

    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        precisions = ["fp32", "fp16"] if ctx.device.startswith("cuda") else ["fp32"]
        if not ctx.device.startswith("cuda"):
            yield Unavailable("torch-engine-fp16", self.name, "fp16 engines are built for CUDA; no GPU on this machine")
        for precision in precisions:
            name = f"torch-engine-{precision}"
            try:
                path = ctx.workdir / f"{workload.stage}-{precision}.pt2"
                module = self._module(workload)
                feeds = workload.sample(2, np.random.default_rng(0))
                example = [torch.from_numpy(feeds[s.name]) for s in workload.inputs]
                if ctx.log:
                    ctx.log(f"compiling {name} (AOTInductor; this takes a while)")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation notes
                    meta = build_torch_engine(
                        module,
                        example,
                        [s.name for s in workload.inputs],
                        path,
                        device=ctx.device,
                        precision=precision,
                        batch_max=max(2, ctx.batch_max),
                    )
                yield CompiledTorchEngine(load_torch_engine(path, ctx.device), workload, name, ctx.device, precision, meta)
            except Exception as e:  # noqa: BLE001
                yield Unavailable(name, self.name, f"build failed: {type(e).__name__}: {_first_line(e)}", failed=True)


# --------------------------------------------------------------------------- CUDA graphs


class CudaGraphEngine(TorchEngine):
    """Eager PyTorch captured in one CUDA graph per input shape, then replayed: no per-op launch cost.

    The first run at a new batch size warms the module up on a side stream (lazy initialisation,
    cuDNN algorithm choice) and captures one forward pass into a graph with its own static input
    buffers. Every run copies its inputs into those buffers (timed, as a server would) and replays the
    graph. The output is the graph's static buffer: read it before the next run at that batch size.
    """

    target = "cuda-graph"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.graphs: dict[tuple, tuple[Any, list[torch.Tensor], torch.Tensor]] = {}

    def _capture(self, prepared: list[torch.Tensor]) -> tuple[Any, list[torch.Tensor], torch.Tensor]:
        static = [t.clone() for t in prepared]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                TorchEngine.run(self, static)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = TorchEngine.run(self, static)
        return graph, static, out

    def run(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        key = tuple((tuple(t.shape), t.dtype) for t in prepared)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(prepared)
        graph, static, out = entry
        for dst, src in zip(static, prepared):
            dst.copy_(src, non_blocking=True)
        graph.replay()
        return out

    def info(self) -> dict[str, Any]:
        return {"graphs": len(self.graphs), "impl": self.impl}

    def close(self) -> None:
        self.graphs.clear()


class CudaGraphTarget(
    Target,
    name="cuda-graph",
    description="eager PyTorch replayed from CUDA graphs (CPTR kernels when they build, else the reference ops): "
    "fp32 and fp16, and the export form (static-weight convs) in fp16; CUDA only",
):
    def missing(self, workload: Workload, ctx: Context) -> str | None:
        if not workload.is_torch:
            return f"stage {workload.stage!r} is not a torch module"
        if not ctx.device.startswith("cuda") or not torch.cuda.is_available():
            return "CUDA graphs need a CUDA device; none on this machine"
        return None

    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        if ops.missing_requirement() is None and ops.load():
            impl: ops.Impl = "cuda"
            how = "CPTR CUDA kernels"
        else:
            impl, how = "ref", f"reference ops (kernels unavailable: {ops.unavailable_reason()})"
        yield from CudaGraphEngine.each_precision(workload, ctx, "cuda-graph", f"eager module in a CUDA graph, {how}", impl=impl)
        if workload.stage == "synthesis" and workload.generator is not None:
            name = "cuda-graph-export-fp16"
            try:
                module = TorchEngineTarget._module(workload)
                yield CudaGraphEngine(
                    workload, module, name, ctx.device, "fp16", f"export form (static-weight convs) in a CUDA graph, {how}", impl=impl
                )
            except Exception as e:  # noqa: BLE001
                yield Unavailable(name, self.name, f"build failed: {type(e).__name__}: {_first_line(e)}", failed=True)


# --------------------------------------------------------------------------- TensorRT


class TrtTarget(Target, name="trt", description="TensorRT engine (CUDA only)"):
    def missing(self, workload: Workload, ctx: Context) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            return "TensorRT is not installed (it needs an NVIDIA GPU; none on this machine)"
        return None if torch.cuda.is_available() else "TensorRT is installed but no CUDA device is visible"

    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        from cptr.bench import trt_target  # import cycle: that module imports this one

        yield from trt_target.engines(workload, ctx)


def _triton_target() -> Target:
    from cptr.bench.triton_target import TritonTarget  # import cycle: that module imports this one

    return TritonTarget()


def _openvino_target() -> Target:
    from cptr.bench.openvino_target import OpenVINOTarget  # import cycle: that module imports this one

    return OpenVINOTarget()


def all_targets() -> dict[str, Target]:
    """Every target in report order."""
    targets: list[Target] = [
        TorchTarget(),
        OnnxTarget(),
        _openvino_target(),
        TrtTarget(),
        TorchEngineTarget(),
        _triton_target(),
        CudaGraphTarget(),
    ]
    return {t.name: t for t in targets}
