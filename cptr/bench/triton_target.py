"""Triton end to end: requests through a real server, from many client threads.

Without ``--url`` the harness exports the workload's model with ``cptr-export`` (the ``demo``
style as is; any other model saved as a checkpoint and exported as its own style) into the run's
work folder, starts the bundled ``tritonserver`` on free loopback ports, and stops it afterwards.
With ``--url`` it measures whatever server is there (``--style`` names the served style; errors
are only meaningful when ``--model`` is the model that server serves). Each concurrent client
thread holds its own :class:`cptr.client.CartoonClient`.

``--triton-engines`` picks the engine inside the embedded server's tensor stages: ``onnx`` (ONNX
Runtime, the default export), ``openvino-fp32`` and ``openvino-bf16`` (``cptr-export --engine
openvino``), and ``openvino-fp32-static`` / ``openvino-bf16-static`` (the same with a model compiled
for each of the run's batch sizes, ``--ov-static-batch``); each gets its own exported repository and
server, measured in the same rounds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cptr import contracts as C
from cptr.bench.targets import Context, Engine, Target, Unavailable
from cptr.bench.workloads import Workload
from cptr.client import CartoonClient
from cptr.engines.openvino import cpu_capabilities, resolve_precision
from cptr.export.style import ExportOptions, export_style
from cptr.models.checkpoints import save_generator
from cptr.triton.layout import manifest_path

MAX_SERVER_BATCH = 64  # cptr.contracts.MAX_SEEDS_PER_REQUEST
MIN_SERVER_BATCH = 8  # cptr-export's default batch_max
SERVER_ENGINES = ("onnx", "openvino-fp32", "openvino-bf16", "openvino-fp32-static", "openvino-bf16-static")  # --triton-engines


def model_name(stage: str, style: str) -> str | None:
    """The Triton model that serves ``stage`` for ``style``."""

    if stage in (C.SYNTHESIS, C.MAPPING, C.ENCODER):
        return C.model_name(stage, style)
    return {"generate": C.generate_model(style), "pipeline": C.cartoonize_model(style), "align": C.PREPROCESS}.get(stage)


class TritonEngine(Engine):
    """Inference requests to one Triton model through :class:`cptr.client.CartoonClient`."""

    target = "triton"
    concurrent = True

    def __init__(
        self,
        url: str,
        protocol: str,
        model: str,
        output: str,
        shm: bool,
        name: str,
        note: str,
        inputs: list[str] | None = None,
        max_batch: int | None = None,
        server: dict[str, Any] | None = None,
        owned_server: Any = None,
    ):
        self.owned_server = owned_server  # stopped by close(): the embedded server lives as long as this engine
        self.url, self.protocol, self.model, self.output, self.shm = url, protocol, model, output, shm
        self.name, self.note, self.server = name, note, server or {}
        self.client = CartoonClient(url, protocol)
        if inputs is None or max_batch is None:
            info = self.client.model_info(model)
            inputs, max_batch = list(info.inputs), info.max_batch_size
            if output not in info.outputs and len(info.outputs) == 1:
                output = self.output = next(iter(info.outputs))
            if output not in info.outputs:
                raise ValueError(f"model {model!r} has no output {output!r} (it has {', '.join(info.outputs)})")
        self.inputs, self.max_batch = inputs, (max_batch or None)
        self.device = "server"

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ValueError(f"model {self.model!r} needs inputs {missing} that the workload does not make")
        return {n: feeds[n] for n in self.inputs}  # inputs the served model fixes itself (truncation) are left out

    def run(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.client.infer(self.model, prepared, [self.output], shared_memory=self.shm)[self.output]

    def worker(self) -> TritonEngine:
        return TritonEngine(
            self.url, self.protocol, self.model, self.output, self.shm, self.name, self.note, self.inputs, self.max_batch or 0, self.server
        )

    def info(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "protocol": self.protocol,
            "model": self.model,
            "shared_memory": self.shm,
            "max_batch_size": self.max_batch,
            **self.server,
        }

    def close(self) -> None:
        self.client.close()
        if self.owned_server is not None:
            self.owned_server.stop()
            self.owned_server = None


def server_metadata(url: str, protocol: str) -> dict[str, Any]:
    """Name and version the server reports (the tritonserver version lives only there)."""
    try:
        if protocol == "grpc":
            import tritonclient.grpc as tc

            with tc.InferenceServerClient(url) as c:
                meta = c.get_server_metadata(as_json=True)
        else:
            import tritonclient.http as tc

            c = tc.InferenceServerClient(url)
            try:
                meta = c.get_server_metadata()
            finally:
                c.close()
        return {"server": meta.get("name"), "server_version": meta.get("version")}
    except Exception as e:  # noqa: BLE001 - informative only
        return {"server_metadata_error": f"{type(e).__name__}: {e}"}


def _export_engine(server_engine: str, batches: tuple[int, ...] = ()) -> dict[str, Any]:
    """``cptr-export`` options (engine, precision[, static batch sizes]) of a ``--triton-engines`` entry."""
    if server_engine == "onnx":
        return {}
    name, static = server_engine.removesuffix("-static"), server_engine.endswith("-static")
    engine, precision = name.rsplit("-", 1)
    return {"engine": engine, "precision": precision, **({"ov_static_batches": tuple(sorted(set(batches)))} if static else {})}


def _server_batch_max(ctx: Context) -> int:
    """The ``--batch-max`` of the embedded server's export."""
    return min(MAX_SERVER_BATCH, max(MIN_SERVER_BATCH, ctx.batch_max))


def _engine_options(server_engine: str, ctx: Context) -> dict[str, Any]:
    """:func:`_export_engine` for this run: the static engines compile the run's batch sizes that the server takes."""
    return _export_engine(server_engine, tuple(b for b in ctx.batches if b <= _server_batch_max(ctx)))


def export_repository(workload: Workload, ctx: Context, server_engine: str = "onnx") -> tuple[Path, str]:
    """A model repository for the workload's model (``cptr-export``), built once per run and engine."""

    out = ctx.workdir / ("triton_repo" if server_engine == "onnx" else f"triton_repo-{server_engine}")
    batch_max = _server_batch_max(ctx)
    engine = _engine_options(server_engine, ctx)
    if workload.model_name == "demo" or workload.generator is None:  # non-generator stages: the demo repository
        style, opts = "demo", ExportOptions(out=out, style="demo", batch_max=batch_max, verify=False, quiet=True, **engine)
    else:
        ckpt = ctx.workdir / "bench_generator.pt"
        if not ckpt.is_file():
            save_generator(workload.generator, ckpt)
        # source == target: the "blend" is the generator itself
        style = "bench"
        opts = ExportOptions(
            out=out, style=style, source=ckpt, target=ckpt, alpha=1.0, batch_max=batch_max, verify=False, quiet=True, **engine
        )
    if not manifest_path(out, style).is_file():
        export_style(opts)
    return out, style


class TritonTarget(
    Target, name="triton", description="Triton Inference Server end to end (embedded server or --url), gRPC/HTTP, optional shared memory"
):
    def build(self, workload: Workload, ctx: Context) -> Iterator[Engine | Unavailable]:
        for server_engine in ctx.triton_engines:
            yield self._engine(workload, ctx, server_engine)

    def _engine(self, workload: Workload, ctx: Context, server_engine: str) -> Engine | Unavailable:
        name = f"triton-{ctx.protocol}" + ("-shm" if ctx.shm else "") + ("" if server_engine == "onnx" else f"-{server_engine}")
        missing = [m for m in ("tritonclient", "pytriton", "cptr.client", "cptr.serving.server") if importlib.util.find_spec(m) is None]
        if missing:
            return Unavailable(name, self.name, f"{', '.join(missing)} missing: pip install 'cptr[serve]'")
        if server_engine not in SERVER_ENGINES:
            return Unavailable(
                name, self.name, f"unknown server engine {server_engine!r}; choose from {', '.join(SERVER_ENGINES)}", failed=True
            )
        options = _engine_options(server_engine, ctx)
        if server_engine != "onnx":
            if ctx.url:
                return Unavailable(
                    name,
                    self.name,
                    "with --url the server's own engines are measured (triton-" + ctx.protocol + "); "
                    "--triton-engines applies to the embedded server",
                )
            reason = _openvino_unavailable(options["precision"])
            if reason:
                return Unavailable(name, self.name, reason)
        server = None
        try:
            if ctx.url:
                url, style, where = ctx.url, ctx.style, f"server at {ctx.url}"
            else:
                from cptr.serving.server import TritonServer  # the [serve] extra: only for an embedded server

                if ctx.log:
                    ctx.log(f"triton: exporting the model repository ({server_engine}) and starting tritonserver")
                repo, style = export_repository(workload, ctx, server_engine)
                server = TritonServer(repo).start()
                url = server.grpc_url if ctx.protocol == "grpc" else server.http_url
                inside = "ONNX Runtime" if server_engine == "onnx" else f"OpenVINO {options['precision']}"
                if options.get("ov_static_batches"):
                    inside += f" compiled for batch {','.join(map(str, options['ov_static_batches']))}"
                where = f"embedded tritonserver (Python backend, {inside} inside), loopback"
            model = model_name(workload.stage, style)
            if model is None:
                raise LookupError(f"no Triton model serves stage {workload.stage!r}")

            with CartoonClient(url, ctx.protocol) as probe:
                served = probe.models()
            if model not in served:
                raise LookupError(f"model {model!r} is not served at {url} (served: {', '.join(served) or 'none'})")
            note = where + ("; outputs through system shared memory" if ctx.shm else "")
            engine = TritonEngine(
                url,
                ctx.protocol,
                model,
                workload.output.name,
                ctx.shm,
                name,
                note,
                server={**server_metadata(url, ctx.protocol), "server_engine": server_engine},
                owned_server=server,
            )
            if server_engine != "onnx":
                engine.precision = options["precision"]
        except Exception as e:  # noqa: BLE001 - report, never crash the run
            if server is not None:
                server.stop()
            first = (str(e).strip().splitlines() or [""])[0]
            missing_model = isinstance(e, LookupError)  # this stage is not in the repository: not a failure
            reason = first if missing_model else f"{type(e).__name__}: {first}"
            return Unavailable(name, self.name, reason, failed=not missing_model)
        return engine


def _openvino_unavailable(precision: str) -> str | None:
    """Why the embedded server cannot run OpenVINO ``precision`` here (None: it can)."""
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed: pip install 'cptr[openvino]'"

    runs, notice = resolve_precision(precision, cpu_capabilities())
    return None if runs == precision else notice
