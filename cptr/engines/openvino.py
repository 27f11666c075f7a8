"""The OpenVINO engine (``cptr-export --engine openvino``): CPU inference in fp32 or bf16.

Each stage's *verified* ONNX file is converted to OpenVINO IR (``model.xml`` + ``model.bin``, fp32
weights, written atomically), compiled for the CPU with an :class:`EngineConfig`, and checked
against the stage's fp32 PyTorch reference on the export's verification inputs before it is kept.

**Precision.** ``fp32`` runs OpenVINO's f32 kernels (asked for explicitly: on a CPU with bf16,
OpenVINO's own default is bf16). ``bf16`` runs convolutions and matrix products in bfloat16 (fp32
accumulation), which is where the 2x over fp32 lies on AVX-512 BF16 / AMX CPUs. bf16 is used only
where the CPU reports it (``OPTIMIZATION_CAPABILITIES`` contains ``BF16``); elsewhere the engine
falls back to fp32 and says so (:func:`resolve_precision`, the one place that decides, for the
exporter and for the serving model alike). ``CPTR_OPENVINO_CAPABILITIES=FP32,...`` replaces the list
OpenVINO reports (to try the fallback on a bf16 machine); everything after it runs as usual.

**Quality check, in image terms.** Every output is compared with fp32 PyTorch as a picture: images in
[-1, 1] are mapped to [0, 255] and the PSNR and the max abs error are recorded; latent outputs
(``w``, ``w_plus``) are first rendered by the fp32 synthesis reference, so an encoder's or a
mapping's error is judged by the image it produces. The gates:

* fp32: max abs error <= 1e-3 x max(1, max|reference|) on the output itself, as ONNX Runtime's fp32
  verification (:data:`cptr.export.onnx.TOLERANCES`).
* bf16: PSNR >= ``min_psnr`` dB (default :data:`DEFAULT_MIN_PSNR` = 35). bf16 keeps 8 significant
  bits, so a conv's output carries a relative error of a few 1e-3 and a whole generator ends near
  0.1 of max abs error on a few pixels (measured on the 256 px random-weight network: 0.09-0.14)
  while the PSNR stays in the 40s. 35 dB is an RMS error of 4.5 grey levels of 255: less than a
  JPEG at quality 90 leaves (38-42 dB is typical there) and well clear of what is visibly broken
  (a wrong weight file or a layer in the wrong precision lands far below 30 dB). Gates below
  :data:`MIN_PSNR_FLOOR` (20 dB, an RMS error of 25 grey levels) are refused: they would let a broken
  engine through.

**Tuning** (:class:`EngineConfig`): performance hint (``latency``: one request at a time on every
core; ``throughput``: parallel streams), number of streams and inference threads (shared by the
streams: threads per stream = threads / streams), and static batch sizes: each listed size gets its
own model compiled with the batch axis fixed (OpenVINO then plans its kernels for that shape: 12-19%
faster in bf16 on the 256 px synthesis, ``benchmarks/RESULTS.md``), every other size runs on the
dynamic-batch model. What OpenVINO actually chose is recorded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cptr.engines import VerificationError
from cptr.io import sha256_file

PRECISIONS = ("fp32", "bf16")
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
_CAPABILITY = {"fp32": "FP32", "bf16": "BF16"}
HINTS = ("latency", "throughput")
MAX_STATIC_BATCHES = 8  # compiled models per stage at most (each holds its own copy of the weights)
CAPABILITIES_ENV = "CPTR_OPENVINO_CAPABILITIES"
DEVICE = "CPU"
DEFAULT_MIN_PSNR = 35.0
MIN_PSNR_FLOOR = 20.0
FP32_TOLERANCE = 1e-3  # == cptr.export.onnx.TOLERANCES["fp32"]
IMAGE_PEAK = 2.0  # images are in [-1, 1]: PSNR on [0, 255] == PSNR on [-1, 1] with peak 2
INSTALL_HINT = "pip install 'cptr[openvino]' (or: pip install openvino)"


class OpenVINOUnavailable(RuntimeError):
    """OpenVINO is not installed (or cannot load); the message says what to install."""


def import_openvino():
    """The ``openvino`` module, or :class:`OpenVINOUnavailable` with the install command."""
    try:
        import openvino
    except ImportError as e:
        raise OpenVINOUnavailable(f"OpenVINO is not installed ({e}): {INSTALL_HINT}") from None
    return openvino


def openvino_version() -> str | None:
    try:
        return import_openvino().__version__
    except OpenVINOUnavailable:
        return None


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class EngineConfig:
    """How one stage is compiled: precision and the CPU tuning options.

    ``streams``: ``None`` (the hint decides), ``"auto"`` or a number. ``threads``: inference threads
    for all streams together (``None``: OpenVINO's default, one per physical core).
    """

    precision: str = "fp32"
    hint: str = "latency"
    streams: int | str | None = None
    threads: int | None = None
    static_batches: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "static_batches", parse_static_batches(self.static_batches))
        if self.precision not in PRECISIONS:
            raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.hint not in HINTS:
            raise ValueError(f"OpenVINO performance hint must be one of {', '.join(HINTS)}, got {self.hint!r}")
        streams = self.streams
        if isinstance(streams, str):
            text = streams.strip().lower()
            streams = None if text in ("", "none") else "auto" if text == "auto" else int(text) if text.isdigit() else streams
            object.__setattr__(self, "streams", streams)
        if streams is not None and streams != "auto" and not (isinstance(streams, int) and streams >= 1):
            raise ValueError(f"OpenVINO streams must be 'auto' or a number >= 1, got {self.streams!r}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"OpenVINO threads must be >= 1, got {self.threads}")

    def with_precision(self, precision: str) -> EngineConfig:
        return replace(self, precision=precision)

    def properties(self) -> dict[str, Any]:
        """Properties for ``openvino.Core.compile_model``."""
        props: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision],
            "PERFORMANCE_HINT": self.hint.upper(),
        }
        if self.streams is not None:
            props["NUM_STREAMS"] = "AUTO" if self.streams == "auto" else str(self.streams)
        if self.threads is not None:
            props["INFERENCE_NUM_THREADS"] = int(self.threads)
        return props

    def triton_parameters(self) -> dict[str, str]:
        """``parameters`` of a config.pbtxt for Triton's ``openvino`` backend (native flavour).

        That backend knows ``HINT_BF16`` but no way to ask for f32: on a CPU with bf16 its fp32
        models run in OpenVINO's default precision, which is bf16 there (see docs/cpu-engines.md).
        """
        params = {"PERFORMANCE_HINT": self.hint.upper()}
        if self.streams is not None:
            params["NUM_STREAMS"] = "AUTO" if self.streams == "auto" else str(self.streams)
        if self.threads is not None:
            params["INFERENCE_NUM_THREADS"] = str(self.threads)
        if self.precision == "bf16":
            params["HINT_BF16"] = "YES"
        return params

    def python_parameters(self) -> dict[str, str]:
        """``parameters`` of the Python-backend stage that runs this engine (read by :meth:`from_parameters`)."""
        params = {"openvino_precision": self.precision, "openvino_hint": self.hint}
        if self.streams is not None:
            params["openvino_streams"] = str(self.streams)
        if self.threads is not None:
            params["openvino_threads"] = str(self.threads)
        if self.static_batches:
            params["openvino_static_batches"] = ",".join(map(str, self.static_batches))
        return params

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> EngineConfig:
        threads = params.get("openvino_threads")
        return cls(
            params.get("openvino_precision", "fp32"),
            params.get("openvino_hint", "latency"),
            params.get("openvino_streams"),
            int(threads) if threads else None,
            params.get("openvino_static_batches", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "static_batches": list(self.static_batches)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineConfig:
        return cls(**{k: d[k] for k in ("precision", "hint", "streams", "threads", "static_batches") if k in d})


def parse_static_batches(value: str | Sequence[int] | None) -> tuple[int, ...]:
    """``"1,4"`` or ``[4, 1]`` -> ``(1, 4)``: sorted, distinct sizes >= 1, at most :data:`MAX_STATIC_BATCHES`."""
    if value is None:
        return ()
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    try:
        sizes = sorted({int(v) for v in items})
    except (TypeError, ValueError):
        raise ValueError(f"OpenVINO static batch sizes must be whole numbers, e.g. 1,4; got {value!r}") from None
    if sizes and sizes[0] < 1:
        raise ValueError(f"OpenVINO static batch sizes must be >= 1, got {value!r}")
    if len(sizes) > MAX_STATIC_BATCHES:
        raise ValueError(f"at most {MAX_STATIC_BATCHES} OpenVINO static batch sizes (one compiled model each), got {len(sizes)}")
    return tuple(sizes)


def cpu_capabilities(core: Any = None) -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU (``CPTR_OPENVINO_CAPABILITIES`` replaces it)."""
    override = os.environ.get(CAPABILITIES_ENV)
    if override is not None:
        return [c.strip().upper() for c in override.split(",") if c.strip()]
    if core is None:
        core = import_openvino().Core()
    return [str(c).upper() for c in core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")]


def resolve_precision(requested: str, capabilities: Sequence[str]) -> tuple[str, str | None]:
    """``(precision to run, notice or None)``: bf16 only where the CPU has it, else fp32 with a notice."""
    if requested not in PRECISIONS:
        raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if _CAPABILITY[requested] in capabilities:
        return requested, None
    if requested == "bf16":
        return "fp32", (
            "OpenVINO bf16 is not available on this CPU (OPTIMIZATION_CAPABILITIES: "
            f"{', '.join(capabilities) or 'none'}; bf16 needs AVX-512 BF16 or AMX): running fp32 instead"
        )
    return requested, None  # fp32 runs everywhere, even when a CPU lists no capabilities


# --------------------------------------------------------------------------- IR and engine


def ir_files(xml_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(model.xml, model.bin)``: OpenVINO reads the weights from the .bin beside the .xml."""
    xml = Path(xml_path)
    if xml.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR file ends in .xml, got {xml}")
    return xml, xml.with_suffix(".bin")


def convert_onnx(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> dict[str, Any]:
    """Convert an ONNX file to OpenVINO IR at ``xml_path`` (+ ``.bin``), fp32 weights, atomically.

    Both files are written in a temporary folder beside the target and renamed into place (the
    weights first), so a reader never sees a half-written pair. Returns file names, sizes, sha256
    and the OpenVINO version for the manifest.
    """

    ov = import_openvino()
    xml, weights = ir_files(xml_path)
    xml.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = ov.convert_model(str(onnx_path))
    staging = Path(tempfile.mkdtemp(prefix=f".{xml.stem}.", suffix=".tmp", dir=xml.parent))
    try:
        # compress_to_fp16=False: the weights stay fp32; the precision is chosen when compiling
        ov.save_model(model, str(staging / xml.name), compress_to_fp16=False)
        os.replace(staging / weights.name, weights)
        os.replace(staging / xml.name, xml)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "ir_sha256": sha256_file(xml),
        "ir_weights_sha256": sha256_file(weights),
        "ir_bytes": xml.stat().st_size + weights.stat().st_size,
        "openvino": ov.__version__,
        "convert_seconds": round(time.perf_counter() - start, 2),
    }


class OpenVINOEngine:
    """One compiled stage: ``engine(feeds) -> {output name: array}`` with FP32 arrays at the boundary.

    ``precision`` is what runs (after the capability check), ``requested`` what was asked for, and
    ``notice`` says why they differ. A call whose batch is one of ``config.static_batches`` runs on
    the model compiled for that batch, any other on the dynamic-batch one. One infer request per
    compiled model: call it from one thread at a time (make one engine per thread otherwise).
    """

    def __init__(self, path: str | os.PathLike, config: EngineConfig | None = None, capabilities: Sequence[str] | None = None):
        ov = import_openvino()
        config = config or EngineConfig()
        core = ov.Core()
        caps = list(cpu_capabilities(core) if capabilities is None else capabilities)
        precision, self.notice = resolve_precision(config.precision, caps)
        self.requested, self.precision, self.capabilities = config.precision, precision, caps
        self.config = config.with_precision(precision)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"OpenVINO model {self.path} does not exist; build it with cptr-export --engine openvino")
        start = time.perf_counter()
        props, ir = self.config.properties(), core.read_model(str(self.path))
        self.compiled = core.compile_model(ir, DEVICE, props)
        self.request = self.compiled.create_infer_request()
        self.static: dict[int, tuple[Any, Any]] = {}  # batch -> (compiled model, its infer request)
        for batch in self.config.static_batches:
            model = ir.clone()  # the IR is read once; each size reshapes its own copy
            model.reshape({port.get_any_name(): ov.PartialShape([batch, *port.get_partial_shape()[1:]]) for port in model.inputs})
            compiled = core.compile_model(model, DEVICE, props)
            self.static[batch] = (compiled, compiled.create_infer_request())
        self.compile_seconds = round(time.perf_counter() - start, 2)
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_names = [p.get_any_name() for p in self.compiled.outputs]

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"{self.path.name} needs inputs {missing}")
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        compiled, request = self.static.get(len(arrays[self.input_names[0]]), (self.compiled, self.request))
        result = request.infer(arrays, share_inputs=False, share_outputs=False)
        return {name: np.asarray(result[port]) for name, port in zip(self.output_names, compiled.outputs)}

    def runtime_info(self) -> dict[str, Any]:
        """What OpenVINO chose: precision, hint, streams, threads (and threads per stream)."""

        def prop(key: str) -> Any:
            try:
                return self.compiled.get_property(key)
            except Exception:  # noqa: BLE001 - informative only
                return None

        streams, threads = prop("NUM_STREAMS"), prop("INFERENCE_NUM_THREADS")
        element = prop("INFERENCE_PRECISION_HINT")
        info = {
            "inference_precision": element.to_string() if hasattr(element, "to_string") else str(element),
            "performance_hint": str(prop("PERFORMANCE_HINT")),
            "streams": int(streams) if streams is not None else None,
            "threads": int(threads) if threads is not None else None,
            "optimal_requests": prop("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
        }
        if info["streams"] and info["threads"]:
            info["threads_per_stream"] = max(1, info["threads"] // info["streams"])
        return info

    def info(self) -> dict[str, Any]:
        out = {
            "precision": self.precision,
            "requested_precision": self.requested,
            "config": self.config.to_dict(),
            "compile_seconds": self.compile_seconds,
            "openvino": openvino_version(),
            **self.runtime_info(),
        }
        if self.notice:
            out["notice"] = self.notice
        return out


# --------------------------------------------------------------------------- quality


def psnr(output: np.ndarray, reference: np.ndarray, peak: float = IMAGE_PEAK) -> float:
    """PSNR in dB of ``output`` against ``reference`` for a signal range of ``peak`` (inf when equal)."""
    mse = float(np.mean((np.asarray(output, np.float64) - np.asarray(reference, np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def is_image(spec: Any) -> bool:
    """An image output of the contract: [3, H, W] in [-1, 1]."""
    return len(spec.dims) == 3 and spec.dims[0] == 3


def check_min_psnr(min_psnr: float) -> float:
    value = float(min_psnr)
    if not value >= MIN_PSNR_FLOOR:
        raise ValueError(
            f"a bf16 PSNR gate of {min_psnr:g} dB would pass visibly broken images (RMS error "
            f"{255 / 10 ** (value / 20):.0f} of 255 grey levels); use at least {MIN_PSNR_FLOOR:g} dB (default {DEFAULT_MIN_PSNR:g})"
        )
    return value


def _reference(stage: Any, batch: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The served inputs of ``stage`` at ``batch`` and the fp32 PyTorch outputs (defaults filled in)."""
    import torch

    full = list(stage.make_inputs(batch))
    feeds, args = {}, []
    for spec, x in zip(stage.inputs, full):
        if spec.name in stage.input_defaults:
            args.append(torch.full((batch, 1), float(stage.input_defaults[spec.name])))
        else:
            args.append(x)
            feeds[spec.name] = x.detach().cpu().numpy().astype(spec.numpy_dtype)
    with torch.no_grad():
        ref = stage.reference(*args)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    return feeds, [r.detach().float().cpu().numpy() for r in refs]


def verify_engine(
    engine: OpenVINOEngine,
    stage: Any,
    batch_sizes: Sequence[int] = (1, 3),
    min_psnr: float = DEFAULT_MIN_PSNR,
    render: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Compare ``engine`` with the stage's fp32 PyTorch reference; raise when it fails its gate.

    ``render`` turns a latent output into an image (the fp32 synthesis reference) so that latent
    stages are judged in image terms too. Returns ``{"batch1": {...}, ..., "psnr_db": worst,
    "max_abs": worst}``; raises :class:`cptr.export.onnx.VerificationError` with the figures.
    """

    precision = engine.precision
    results: dict[str, Any] = {}
    worst_psnr, worst_abs, worst_image_abs = float("inf"), 0.0, 0.0
    for batch in batch_sizes:
        feeds, refs = _reference(stage, batch)
        outs = engine(feeds)
        row: dict[str, Any] = {}
        for spec, ref in zip(stage.outputs, refs):
            out = outs.get(spec.name)
            expected = (batch, *spec.dims)
            if out is None or out.shape != ref.shape or out.dtype != spec.numpy_dtype:
                got = "missing" if out is None else f"{out.shape} {out.dtype}"
                raise VerificationError(f"{stage.key}: OpenVINO output {spec.name!r} is {got}, expected {expected} {spec.numpy_dtype}")
            if not np.isfinite(out).all():
                raise VerificationError(f"{stage.key}: OpenVINO {precision} output {spec.name!r} has NaN/Inf values at batch {batch}")
            err = float(np.abs(out.astype(np.float64) - ref).max())
            if is_image(spec):
                quality, image_err = psnr(out, ref), err
            elif render is not None:
                img_out, img_ref = render(out), render(ref)
                quality, image_err = psnr(img_out, img_ref), float(np.abs(img_out.astype(np.float64) - img_ref).max())
            else:  # no image to judge by: the output's own range is the peak
                quality, image_err = psnr(out, ref, max(float(ref.max() - ref.min()), 1e-12)), None
            row.update({"psnr_db": round(quality, 2), "max_abs": err})
            if image_err is not None and not is_image(spec):
                row["image_max_abs"] = image_err
            scale = max(1.0, float(np.abs(ref).max()))
            where = f"{stage.key}: OpenVINO {precision} output {spec.name!r} at batch {batch}"
            if precision == "fp32" and not err <= FP32_TOLERANCE * scale:
                raise VerificationError(
                    f"{where} differs from fp32 PyTorch by {err:.3g} (tolerance {FP32_TOLERANCE:g}"
                    f"{f' x {scale:.3g}' if scale > 1 else ''}; PSNR {quality:.1f} dB); the engine is wrong, not written"
                )
            if precision == "bf16" and not quality >= min_psnr:
                judged = "its image" if not is_image(spec) and render is not None else "the image"
                raise VerificationError(
                    f"{where}: PSNR of {judged} {quality:.1f} dB against fp32 PyTorch (max abs error {err:.3g}), "
                    f"below the bf16 gate of {min_psnr:g} dB; the engine is not written"
                )
            worst_psnr, worst_abs = min(worst_psnr, quality), max(worst_abs, err)
            if image_err is not None:
                worst_image_abs = max(worst_image_abs, image_err)
        results[f"batch{batch}"] = row
    results.update(
        {
            "psnr_db": round(worst_psnr, 2),
            "max_abs": worst_abs,
            "image_max_abs": worst_image_abs,
            "gate": f"PSNR >= {min_psnr:g} dB" if precision == "bf16" else f"max abs <= {FP32_TOLERANCE:g} x max(1, max|ref|)",
        }
    )
    return results


def synthesis_renderer(synthesis_reference: Any, n_latent: int) -> Callable[[np.ndarray], np.ndarray]:
    """Latent -> image with the fp32 synthesis reference: ``w`` [B, D] is repeated over W+."""
    import torch

    def render(latent: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(latent, dtype=np.float32))
        if x.ndim == 2:
            x = x[:, None, :].expand(-1, n_latent, -1)
        with torch.no_grad():
            return synthesis_reference(x).float().numpy()

    return render


def build_openvino_engine(
    onnx_path: str | os.PathLike,
    xml_path: str | os.PathLike,
    stage: Any,
    config: EngineConfig,
    *,
    verify: bool = True,
    batch_sizes: Sequence[int] = (1, 3),
    min_psnr: float = DEFAULT_MIN_PSNR,
    render: Callable[[np.ndarray], np.ndarray] | None = None,
    capabilities: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Convert ``onnx_path`` to IR at ``xml_path``, compile it with ``config``, verify it (unless
    ``verify=False``); returns the manifest entry. On a failed check the IR files are removed."""
    xml, weights = ir_files(xml_path)
    meta = convert_onnx(onnx_path, xml)
    try:
        engine = OpenVINOEngine(xml, config, capabilities)
        meta.update(engine.info())
        meta["verified"] = bool(verify)
        if verify:
            meta["quality"] = verify_engine(engine, stage, batch_sizes, min_psnr, render)
            meta["min_psnr"] = float(min_psnr) if engine.precision == "bf16" else None
    except BaseException:
        xml.unlink(missing_ok=True)
        weights.unlink(missing_ok=True)
        raise
    return meta
