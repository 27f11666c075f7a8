"""Python client of the CPTR Triton server (gRPC or HTTP, blocking or asyncio).

::

    from cptr.client import CartoonClient

    with CartoonClient("127.0.0.1:8001") as client:              # gRPC; "...:8000", protocol="http" for HTTP
        cartoon = client.cartoonize("me.jpg", style="demo")      # PIL.Image
        group = client.cartoonize_faces("us.jpg")                # every face: .faces, .composite
        faces = client.generate(range(8), style="demo", mix=(42, 6))

Server refusals become exceptions from :mod:`cptr.client.errors` (``NoFaceError``,
``BadImageError``, ``UnknownStyleError``...). Requests that find the server unavailable are
retried a bounded number of times with exponential backoff. Seeds above the model's
``max_batch_size`` are split into several requests. ``shared_memory=True`` returns raw tensors
through POSIX shared memory instead of the socket (client and server on the same host).

Both clients share one implementation: each operation is a *plan* (a generator in
:class:`_Plans`) that builds the requests, yields each transport step (:class:`_Request`,
:class:`_Sleep`, :class:`_Gather`) and decodes the answers. :class:`CartoonClient` runs the steps
blocking, :class:`AsyncCartoonClient` awaits them; neither builds a request or decodes a response
itself. Names, tensors and error codes come from :mod:`cptr.contracts` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import io
import os
import socket
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import numpy as np
from PIL import Image

from cptr import contracts as C
from cptr.client.errors import (
    BY_CODE,
    BadRequestError,
    CartoonError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
    UnknownStyleError,
)

Protocol = Literal["grpc", "http"]
Output = Literal["pil", "array", "png", "tensor"]
ImageLike = bytes | bytearray | str | os.PathLike | Image.Image | np.ndarray
T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_URLS = {p: f"{C.DEFAULT_HOST}:{C.DEFAULT_PORTS[p]}" for p in ("grpc", "http")}
OUTPUTS = ("pil", "array", "png", "tensor")
START_HINT = (
    "is a server running there? Start one with: cptr serve --model-repository triton_repo (make one with: cptr-export --style demo)"
)


# --- inputs -----------------------------------------------------------------------------------


def encode_image(image: ImageLike) -> bytes:
    """Encoded photo bytes from a file path, bytes, a PIL image or a uint8 ``[H, W, 3]`` array (PNG)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        return Path(image).read_bytes()
    if isinstance(image, Image.Image):
        im = image
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"an image array must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
        im = Image.fromarray(image)
    else:
        raise TypeError(f"expected a path, bytes, PIL image or uint8 array, got {type(image).__name__}")
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def parse_seeds(spec: str | int | Iterable[int]) -> list[int]:
    """Seeds from ``"1-8,12"``, an int or an iterable of ints."""
    if isinstance(spec, (int, np.integer)):
        seeds = [int(spec)]
    elif isinstance(spec, str):
        seeds = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            try:
                seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
            except ValueError:
                raise ValueError(f"bad seed list {spec!r}: use numbers and ranges, e.g. 1-8,12") from None
    else:
        seeds = [int(s) for s in spec]
    if not seeds:
        raise ValueError("no seeds given")
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise ValueError(f"seeds must be in [0, 2**63), got {bad[:5]}")
    return seeds


def parse_mix(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """Style mix ``"SEED:LAYER"`` or ``(seed, layer)``: W+ entries from ``layer`` on come from ``seed``.

    The clients also check ``layer`` against the style's number of W+ entries (:func:`check_mix_layer`).
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        seed, sep, layer = spec.partition(":")
        try:
            spec = (int(seed), int(layer))
        except ValueError:
            raise ValueError(f"bad mix {spec!r}: use SEED:LAYER, e.g. 42:6") from None
        if not sep:
            raise ValueError(f"bad mix {spec!r}: use SEED:LAYER, e.g. 42:6")
    seed, layer = (int(v) for v in spec)
    if not 0 <= seed < 2**63 or layer < 0:
        raise ValueError(f"mix seed must be in [0, 2**63) and the crossover layer >= 0, got {seed}:{layer}")
    return seed, layer


def check_mix_layer(mix: tuple[int, int] | None, mix_info: ModelInfo, style: str) -> None:
    """Refuse a crossover ``layer`` that mixes nothing: the style's W+ (the style-mix model's output) has
    ``n_latent`` entries, so ``layer`` must be below it (0 means no mixing)."""
    if mix is None:
        return
    n_latent = int(next(iter(mix_info.outputs.values())).dims[0])
    if mix[1] >= n_latent:
        raise BadRequestError(
            f"mix layer {mix[1]} is out of range: style '{style}' has {n_latent} W+ layers, so use SEED:LAYER with "
            f"LAYER from 1 to {n_latent - 1} (lower = more of the mix seed; 0 = no mixing), e.g. {mix[0]}:{n_latent // 2}",
            model=mix_info.name,
        )


def decode_output(png: bytes, output: Output) -> Image.Image | np.ndarray | bytes:
    if output == "png":
        return png
    im = Image.open(io.BytesIO(png))
    im.load()
    return np.asarray(im.convert("RGB")) if output == "array" else im


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")


def _strip_url(url: str) -> str:
    for scheme in ("http://", "https://", "grpc://"):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    return url.rstrip("/")


# --- errors -----------------------------------------------------------------------------------


def map_error(exc: BaseException, model: str, url: str) -> BaseException:
    """Turn a tritonclient/transport exception into a :class:`CartoonError` (others pass unchanged)."""
    if isinstance(exc, CartoonError):
        return exc
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        msg = exc.message() or str(exc)
        status = str(exc.status() or "")
        code, text = C.parse_error(msg)
        if code is not None:
            return BY_CODE[code](text, model=model, status=status)
        if "unknown model" in msg or status in ("StatusCode.NOT_FOUND", "404"):
            return UnknownStyleError(f"the server at {url} has no model '{model}' ({msg})", model=model, status=status)
        if status in ("StatusCode.UNAVAILABLE", "503") or "failed to connect" in msg.lower():
            return ServerUnavailableError(f"the server at {url} is unavailable: {msg}; {START_HINT}", model=model, status=status)
        if status == "StatusCode.DEADLINE_EXCEEDED" or "deadline exceeded" in msg.lower():
            return RequestTimeoutError(f"'{model}' did not answer in time: {msg}", model=model, status=status)
        if status in ("StatusCode.INVALID_ARGUMENT", "400"):
            return BadRequestError(msg, model=model, status=status)
        return ServerError(f"'{model}' failed: {msg}", model=model, status=status)
    if isinstance(exc, (asyncio.TimeoutError, socket.timeout, TimeoutError)) or type(exc).__name__ == "Timeout":
        return RequestTimeoutError(f"'{model}' at {url} did not answer in time", model=model)
    if isinstance(exc, (ConnectionError, OSError)):
        return ServerUnavailableError(f"cannot reach the server at {url}: {exc}; {START_HINT}", model=model)
    return exc


# --- model metadata ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What the client needs from a model's config."""

    name: str
    max_batch_size: int
    inputs: dict[str, C.TensorSpec]
    outputs: dict[str, C.TensorSpec]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelInfo:
        return cls(
            name=config["name"],
            max_batch_size=int(config.get("max_batch_size", 0)),
            inputs={e["name"]: C.spec_from_config(e) for e in config.get("input", [])},
            outputs={e["name"]: C.spec_from_config(e) for e in config.get("output", [])},
        )


# --- transport steps a plan yields ------------------------------------------------------------


@dataclass
class _Request:
    """One call to the server: ``ready``, ``index``, ``config`` (of ``model``) or ``infer``."""

    kind: str
    model: str = "server"
    inputs: Mapping[str, np.ndarray] | None = None
    outputs: Sequence[str] = ()
    shm: dict[str, tuple[np.dtype, tuple[int, ...]]] = field(default_factory=dict)  # output -> (dtype, shape)


@dataclass
class _Sleep:
    seconds: float


@dataclass
class _Gather:
    """Run several plans (concurrently where the client can) and collect their results in order."""

    plans: list[Generator[Any, Any, Any]]
    concurrency: int | None = None  # None: as many as there are plans
    return_exceptions: bool = False


Plan = Generator[Any, Any, T]


class _Drive:
    """One run of a plan, the part both clients share: iterating gives the plan's steps; each step's answer is
    set as ``answer`` inside ``with drive.answering():``, where an exception is caught and thrown into the plan
    instead (which maps or re-raises it); ``result`` is the plan's return value once the iteration ends.

    ::

        drive = _Drive(plan)
        for step in drive:
            with drive.answering():
                drive.answer = run(step)  # or: await run(step)
        return drive.result
    """

    def __init__(self, plan: Plan[Any]):
        self._plan = plan
        self._error: BaseException | None = None
        self.answer: Any = None
        self.result: Any = None

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                step = self._plan.throw(self._error) if self._error is not None else self._plan.send(self.answer)
            except StopIteration as stop:
                self.result = stop.value
                return
            self.answer, self._error = None, None
            yield step

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        try:
            yield
        except Exception as e:  # noqa: BLE001 - thrown into the plan, which maps or re-raises it
            self._error = e


class _Plans:
    """Settings, and every operation as a plan shared by the blocking and the asyncio client."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        *,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.25,
        verbose: bool = False,
    ):
        if protocol not in DEFAULT_URLS:
            raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0, retries and backoff_s >= 0")
        self.protocol = protocol
        self.url = _strip_url(url or DEFAULT_URLS[protocol])
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.verbose = verbose
        self._infos: dict[str, ModelInfo] = {}
        if protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc
        self._tc = tc
        self._init_connections()

    def _init_connections(self) -> None:
        """Set up the subclass's connection state (none opened yet)."""

    # --- request building and response decoding (no I/O) ---------------------------------------

    def _unknown(self, model: str, served: Sequence[str]) -> UnknownStyleError:
        """An UnknownStyleError that says what the server does serve."""
        public = C.public_models(served) or list(served)
        if model.startswith(C.CARTOONIZE_PREFIX):
            wanted = model.removeprefix(C.CARTOONIZE_PREFIX)  # <style> or <style>_<prompt>
            styles = [m.removeprefix(C.GENERATE_PREFIX) for m in served if m.startswith(C.GENERATE_PREFIX)]
            style = next((st for st in styles if wanted == st or wanted.startswith(st + "_")), None)
            if style and not any(m.startswith(C.CARTOONIZE_PREFIX + style) for m in served):
                return UnknownStyleError(
                    f"the server at {self.url} serves style '{style}' for random faces only (generate_{style}): it was exported "
                    f"without an encoder, so it cannot cartoonize photos. Register e4e or pSp weights with "
                    f"`cptr styles add {style} --source ... --target ... --encoder e4e_ffhq_encode.pt --replace` (or train one: "
                    "cptr-train encoder), then export it again",
                    model=model,
                )
        what = f"model '{model}'"
        for prefix in (C.GENERATE_PREFIX, C.CARTOONIZE_PREFIX):
            if model.startswith(prefix):
                rest = model.removeprefix(prefix)
                what = f"style/prompt '{rest}' (model '{model}')"
        return UnknownStyleError(
            f"the server at {self.url} does not serve {what}; it serves: {', '.join(public) or 'nothing'}. "
            "Export a style with: cptr-export --style NAME [--mapper PROMPT=PATH], then restart cptr serve",
            model=model,
        )

    def _backoff(self, attempt: int) -> float:
        return self.backoff_s * (2**attempt)

    def _inputs(self, arrays: Mapping[str, np.ndarray]) -> list[Any]:
        from tritonclient.utils import np_to_triton_dtype

        out = []
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            x = self._tc.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype) if arr.dtype != object else "BYTES")
            x.set_data_from_numpy(arr)
            out.append(x)
        return out

    def _outputs(self, names_: Sequence[str]) -> list[Any]:
        return [self._tc.InferRequestedOutput(n) for n in names_]

    def _infer_kwargs(self) -> dict[str, Any]:
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    def _index_kwargs(self) -> dict[str, Any]:
        return {"as_json": True} if self.protocol == "grpc" else {}

    @staticmethod
    def _config_dict(response: Any) -> dict[str, Any]:
        if isinstance(response, dict):
            return response.get("config", response)
        from google.protobuf import json_format

        return json_format.MessageToDict(response.config, preserving_proto_field_name=True)

    @staticmethod
    def _ready_models(index: Any) -> list[str]:
        rows = index.get("models", []) if isinstance(index, dict) else index
        return sorted(r["name"] for r in rows if r.get("state", "READY") == "READY")

    @staticmethod
    def _cartoonize_arrays(data: bytes, paste_back: bool, largest: bool) -> dict[str, np.ndarray]:
        return {
            C.IMAGE_BYTES.name: np.array([[data]], dtype=np.object_),
            C.PASTE_BACK.name: np.array([[int(bool(paste_back))]], dtype=C.PASTE_BACK.numpy_dtype),
            C.LARGEST.name: np.array([[int(bool(largest))]], dtype=C.LARGEST.numpy_dtype),
        }

    @staticmethod
    def _generate_chunks(seeds: Sequence[int], mix: tuple[int, int] | None, batch: int) -> list[dict[str, np.ndarray]]:
        mix_row = mix if mix is not None else (0, 0)
        chunks = []
        for i in range(0, len(seeds), max(batch, 1)):
            part = seeds[i : i + max(batch, 1)]
            chunks.append(
                {
                    C.SEED.name: np.array(part, dtype=C.SEED.numpy_dtype).reshape(-1, 1),
                    C.MIX.name: np.tile(np.array(mix_row, dtype=C.MIX.numpy_dtype), (len(part), 1)),
                }
            )
        return chunks

    @staticmethod
    def _image_output(info: ModelInfo) -> str:
        fixed = [s.name for s in info.outputs.values() if s.dtype == "FP32"]
        if not fixed:
            raise ServerError(f"model '{info.name}' has no FP32 image output", model=info.name)
        return fixed[0]

    @staticmethod
    def _shm_sizes(info: ModelInfo, outputs: Sequence[str], batch: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        sizes = {}
        for name in outputs:
            spec = info.outputs[name]
            if spec.dtype == "BYTES" or -1 in spec.dims:
                raise ValueError(f"output '{name}' ({spec.dtype} {spec.dims}) has no fixed size; it cannot go through shared memory")
            sizes[name] = (spec.numpy_dtype, (batch, *spec.dims))
        return sizes

    @staticmethod
    def _results(result: Any, outputs: Sequence[str], shm: Mapping[str, _Region]) -> dict[str, np.ndarray]:
        out = {}
        for name in outputs:
            if name in shm:
                r = shm[name]
                out[name] = np.array(_sysshm().get_contents_as_numpy(r.handle, r.dtype, r.shape), copy=True)
            else:
                out[name] = result.as_numpy(name)
        return out

    # --- plans ------------------------------------------------------------------------------

    def _call(self, request: _Request) -> Plan[Any]:
        """``request`` with bounded retries while the server is unavailable; errors mapped to CartoonError."""
        model = request.model
        for attempt in range(self.retries + 1):
            try:
                return (yield request)
            except Exception as e:  # noqa: BLE001 - mapped below
                err = map_error(e, model, self.url)
                if isinstance(err, ServerUnavailableError) and attempt < self.retries:
                    yield _Sleep(self._backoff(attempt))
                    continue
                if err is e:
                    raise
                if isinstance(err, UnknownStyleError) and model != "server":
                    with contextlib.suppress(Exception):
                        err = self._unknown(model, (yield from self._models()))
                raise err from e
        raise AssertionError("unreachable")

    def _is_ready(self) -> Plan[bool]:
        """Whether the server answers and is ready (False rather than an error)."""
        try:
            return bool((yield from self._call(_Request("ready"))))
        except CartoonError:
            return False

    def _models(self) -> Plan[list[str]]:
        """Names of the models the server has loaded and ready."""
        return self._ready_models((yield from self._call(_Request("index"))))

    def _styles(self) -> Plan[list[str]]:
        """Styles served (those with a generate_<style> ensemble)."""
        return C.served_styles((yield from self._models()))

    def _model_info(self, model: str) -> Plan[ModelInfo]:
        """A served model's inputs, outputs and batch limit (read once, then cached)."""
        if model not in self._infos:
            cfg = yield from self._call(_Request("config", model))
            self._infos[model] = ModelInfo.from_config(self._config_dict(cfg))
        return self._infos[model]

    def _infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None, *, shared_memory: bool = False
    ) -> Plan[dict[str, np.ndarray]]:
        """One inference request: arrays in, arrays out (what the benchmarks time).

        ``shared_memory=True`` returns the fixed-size outputs through system shared memory (blocking client only).
        """
        info = (yield from self._model_info(model)) if (outputs is None or shared_memory) else None
        outputs = list(outputs if outputs is not None else info.outputs)  # type: ignore[union-attr]
        shm = {}
        if shared_memory:
            batch = int(np.asarray(next(iter(inputs.values()))).shape[0])
            shm = self._shm_sizes(info, [o for o in outputs if info.outputs[o].dtype != "BYTES"], batch)  # type: ignore[union-attr]
        return (yield from self._call(_Request("infer", model, inputs, outputs, shm)))

    def _cartoonize(
        self,
        image: ImageLike,
        style: str = "demo",
        prompt: str | None = None,
        paste_back: bool = False,
        output: Output = "pil",
        largest: bool = False,
    ) -> Plan[Image.Image | np.ndarray | bytes]:
        """Photo -> one picture: with ``paste_back``, the photo with *every* face cartoonized (``largest=True``: its
        largest face only); otherwise the cartoon of its largest face. A PIL image (``output='pil'``), uint8 array, PNG
        bytes, or the raw float tensor [3, S, S] of the largest face's cartoon. :meth:`cartoonize_faces` gives each
        face's cartoon."""
        _check_output(output)
        model = C.cartoonize_model(style, prompt)
        paste = paste_back and output != "tensor"
        arrays = self._cartoonize_arrays(encode_image(image), paste, largest or not paste)  # one picture: the largest face
        if output == "tensor":
            name = self._image_output((yield from self._model_info(model)))
            return (yield from self._infer(model, arrays, [name]))[name][0]
        wanted = C.COMPOSITE.name if paste else C.OUTPUT_BYTES.name
        result = yield from self._infer(model, arrays, [wanted])
        return decode_output(result[wanted][0, 0], output)

    def _cartoonize_faces(
        self,
        image: ImageLike,
        style: str = "demo",
        prompt: str | None = None,
        paste_back: bool = True,
        output: Output = "pil",
        largest: bool = False,
    ) -> Plan[FaceCartoons]:
        """Every face of a photo above ``contracts.MIN_FACE_SIZE`` in one request, encoded and synthesized as one
        batch: each face's cartoon (largest first) and, with ``paste_back``, the composite with all of them pasted
        back. More than ``contracts.MAX_FACES_PER_PHOTO`` faces raises :class:`TooManyFacesError` (``largest=True``
        takes the largest face only)."""
        _check_output(output)
        model = C.cartoonize_model(style, prompt)
        arrays = self._cartoonize_arrays(encode_image(image), paste_back, largest)
        name = self._image_output((yield from self._model_info(model))) if output == "tensor" else C.OUTPUT_BYTES.name
        result = yield from self._infer(model, arrays, [name, *([C.COMPOSITE.name] if paste_back else [])])
        faces = list(result[name]) if output == "tensor" else [decode_output(b, output) for b in result[name][:, 0]]
        composite = decode_output(result[C.COMPOSITE.name][0, 0], "array" if output == "tensor" else output) if paste_back else None
        return FaceCartoons(faces, composite)

    def _cartoonize_many(
        self,
        images: Iterable[ImageLike],
        style: str = "demo",
        prompt: str | None = None,
        paste_back: bool = False,
        output: Output = "pil",
        concurrency: int = 4,
        return_exceptions: bool = False,
    ) -> Plan[list[Any]]:
        """Cartoonize many photos with ``concurrency`` requests in flight (the server batches them)."""
        plans = [self._cartoonize(img, style, prompt, paste_back, output) for img in images]
        return (yield _Gather(plans, max(1, concurrency), return_exceptions))

    def _generate(
        self,
        seeds: str | int | Iterable[int],
        style: str = "demo",
        mix: str | tuple[int, int] | None = None,
        output: Output = "pil",
        shared_memory: bool = False,
    ) -> Plan[list[Any] | np.ndarray]:
        """Random cartoon faces, one per seed; ``mix=(seed2, layer)`` mixes styles from W+ entry ``layer`` on.

        ``output='tensor'`` returns the raw float32 images ``[N, 3, S, S]`` (optionally through shared memory, blocking
        client only).
        """
        _check_output(output)
        seeds_, mix_ = parse_seeds(seeds), parse_mix(mix)
        model = C.generate_model(style)
        info = yield from self._model_info(model)
        if mix_ is not None:
            check_mix_layer(mix_, (yield from self._model_info(C.model_name(C.STYLE_MIX, style))), style)
        want = [self._image_output(info)] if output == "tensor" else [C.OUTPUT_BYTES.name]
        shm = shared_memory and output == "tensor"
        chunks = self._generate_chunks(seeds_, mix_, info.max_batch_size)
        parts = [p[want[0]] for p in (yield _Gather([self._infer(model, chunk, want, shared_memory=shm) for chunk in chunks]))]
        if output == "tensor":
            return np.concatenate(parts)
        return [decode_output(b, output) for part in parts for b in part[:, 0]]


@dataclass(frozen=True)
class FaceCartoons:
    """Every face of one photo, cartoonized in one request (see :meth:`CartoonClient.cartoonize_faces`)."""

    faces: list[Any]  # each face's cartoon, largest face first, in the requested output type
    composite: Any | None  # the photo with every cartoon pasted back (None unless paste_back; an array for output='tensor')


@dataclass
class _Region:
    handle: Any
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def _sysshm() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tritonclient's shared_memory imports pkg_resources
        from tritonclient.utils import shared_memory

    return shared_memory


def _release_regions(regions: list[tuple[Any, _Region]]) -> None:
    """Unregister and destroy shared-memory regions (close(), or when the client is collected)."""
    sysshm = _sysshm()
    while regions:
        client, region = regions.pop()
        with contextlib.suppress(Exception):
            client.unregister_system_shared_memory(region.name)
        with contextlib.suppress(Exception):
            sysshm.destroy_shared_memory_region(region.handle)


def _api(plan: Callable[..., Any], method: Callable[..., Any]) -> None:
    """Give a client method the public name, signature and docstring of the plan it runs (``_x`` -> ``x``; the
    signature's ``Plan[R]`` return becomes ``R``), so that help(), IDEs and the docs read the same on both clients."""
    functools.update_wrapper(method, plan)
    method.__name__ = method.__qualname__ = plan.__name__.lstrip("_")
    sig = inspect.signature(plan)
    ret = sig.return_annotation  # a string (postponed annotations): "Plan[R]"
    if isinstance(ret, str) and ret.startswith("Plan[") and ret.endswith("]"):
        ret = ret[len("Plan[") : -1]
    method.__signature__ = sig.replace(return_annotation=ret)  # type: ignore[attr-defined]
    method.__annotations__ = {**plan.__annotations__, "return": ret}
    del method.__wrapped__  # inspect.signature reads __signature__, not the plan's


def _blocking(plan: Callable[Concatenate[Any, P], Plan[T]]) -> Callable[Concatenate[Any, P], T]:
    """The blocking client's method for ``plan``: build the plan, run it to its result."""

    def method(self: CartoonClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(plan(self, *args, **kwargs))

    _api(plan, method)
    return method


def _awaited(plan: Callable[Concatenate[Any, P], Plan[T]]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The asyncio client's method for ``plan``: build the plan, await its result."""

    async def method(self: AsyncCartoonClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(plan(self, *args, **kwargs))

    _api(plan, method)
    return method


class CartoonClient(_Plans):
    """Blocking client, safe to share between threads (one connection per thread)."""

    def _init_connections(self) -> None:
        self._local = threading.local()
        self._clients: list[Any] = []
        self._regions: list[tuple[Any, _Region]] = []  # (client, region): registered shared memory
        self._lock = threading.Lock()
        weakref.finalize(self, _release_regions, self._regions)

    # --- driver: run a plan's steps, blocking ---------------------------------------------------

    def _run(self, plan: Plan[T]) -> T:
        drive = _Drive(plan)
        for step in drive:
            with drive.answering():
                drive.answer = self._step(step)
        return drive.result

    def _step(self, step: Any) -> Any:
        if isinstance(step, _Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, _Gather):
            return self._gather(step)
        return self._request(self._client(), step)

    def _gather(self, step: _Gather) -> list[Any]:
        def one(plan: Plan[Any]) -> Any:
            try:
                return self._run(plan)
            except Exception as e:
                if step.return_exceptions:
                    return e
                raise

        if step.concurrency is None or step.concurrency <= 1 or len(step.plans) <= 1:
            return [one(p) for p in step.plans]  # one at a time (the server batches what is in flight)
        with ThreadPoolExecutor(max_workers=step.concurrency) as pool:
            return list(pool.map(one, step.plans))

    def _request(self, client: Any, r: _Request) -> Any:
        if r.kind == "ready":
            return client.is_server_ready()
        if r.kind == "index":
            return client.get_model_repository_index(**self._index_kwargs())
        if r.kind == "config":
            if self.protocol == "grpc":
                return client.get_model_config(r.model, client_timeout=self.timeout_s)
            return client.get_model_config(r.model)
        requested = self._outputs(r.outputs)
        if not r.shm:
            return self._results(client.infer(r.model, self._inputs(r.inputs), outputs=requested, **self._infer_kwargs()), r.outputs, {})
        try:
            shm = {o: self._region(client, o, dtype, shape) for o, (dtype, shape) in r.shm.items()}
            for out in requested:
                if out.name() in shm:
                    out.set_shared_memory(shm[out.name()].name, shm[out.name()].nbytes)
            return self._results(client.infer(r.model, self._inputs(r.inputs), outputs=requested, **self._infer_kwargs()), r.outputs, shm)
        except Exception:
            self._local.__dict__.pop("regions", None)  # e.g. a restarted server forgot them: register anew
            raise

    # --- transport ------------------------------------------------------------------------------

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                client = self._tc.InferenceServerClient(self.url, verbose=self.verbose)
            else:
                client = self._tc.InferenceServerClient(
                    self.url, verbose=self.verbose, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _region(self, client: Any, output: str, dtype: np.dtype, shape: tuple[int, ...]) -> _Region:
        """This thread's shared-memory region for ``output`` of this shape, registered once and reused."""
        cache: dict[tuple[str, str, tuple[int, ...]], _Region] = self._local.__dict__.setdefault("regions", {})
        key = (output, np.dtype(dtype).str, tuple(shape))
        if key not in cache:
            name = f"cptr_{os.getpid()}_{uuid.uuid4().hex[:12]}"
            region = _Region(None, name, np.dtype(dtype), tuple(shape))
            region.handle = _sysshm().create_shared_memory_region(name, f"/{name}", region.nbytes)
            with self._lock:
                self._regions.append((client, region))
            client.register_system_shared_memory(name, f"/{name}", region.nbytes)
            cache[key] = region
        return cache[key]

    def close(self) -> None:
        _release_regions(self._regions)
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            with contextlib.suppress(Exception):
                c.close()
        self._local = threading.local()

    def __enter__(self) -> CartoonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- API: the plans, run to their results -------------------------------------------------

    is_ready = _blocking(_Plans._is_ready)
    model_info = _blocking(_Plans._model_info)
    models = _blocking(_Plans._models)
    styles = _blocking(_Plans._styles)
    infer = _blocking(_Plans._infer)
    cartoonize = _blocking(_Plans._cartoonize)
    cartoonize_faces = _blocking(_Plans._cartoonize_faces)
    cartoonize_many = _blocking(_Plans._cartoonize_many)
    generate = _blocking(_Plans._generate)


class AsyncCartoonClient(_Plans):
    """asyncio client (tritonclient.grpc.aio / tritonclient.http.aio) with the same methods, awaited."""

    def _init_connections(self) -> None:
        self._aclient: Any = None

    # --- driver: run a plan's steps, awaited ----------------------------------------------------

    async def _run(self, plan: Plan[T]) -> T:
        drive = _Drive(plan)
        for step in drive:
            with drive.answering():
                drive.answer = await self._step(step)
        return drive.result

    async def _step(self, step: Any) -> Any:
        if isinstance(step, _Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, _Gather):
            gate = asyncio.Semaphore(step.concurrency or max(1, len(step.plans)))

            async def one(plan: Plan[Any]) -> Any:
                async with gate:
                    return await self._run(plan)

            return await asyncio.gather(*(one(p) for p in step.plans), return_exceptions=step.return_exceptions)
        return await asyncio.wait_for(self._request(self._client(), step), self.timeout_s + 5)

    async def _request(self, client: Any, r: _Request) -> Any:
        if r.kind == "ready":
            return await client.is_server_ready()
        if r.kind == "index":
            return await client.get_model_repository_index(**self._index_kwargs())
        if r.kind == "config":
            return await client.get_model_config(r.model)
        if r.shm:
            raise ValueError("the asyncio client does not use shared memory")
        result = await client.infer(r.model, self._inputs(r.inputs), outputs=self._outputs(r.outputs), **self._infer_kwargs())
        return self._results(result, r.outputs, {})

    # --- transport ------------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._aclient is None:
            if self.protocol == "grpc":
                import tritonclient.grpc.aio as aio

                self._aclient = aio.InferenceServerClient(self.url, verbose=self.verbose)
            else:
                import tritonclient.http.aio as aio

                self._aclient = aio.InferenceServerClient(self.url, verbose=self.verbose, conn_timeout=self.timeout_s)
        return self._aclient

    async def close(self) -> None:
        if self._aclient is not None:
            client, self._aclient = self._aclient, None
            await client.close()

    async def __aenter__(self) -> AsyncCartoonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- API: the same plans, awaited -----------------------------------------------------------

    is_ready = _awaited(_Plans._is_ready)
    model_info = _awaited(_Plans._model_info)
    models = _awaited(_Plans._models)
    styles = _awaited(_Plans._styles)
    infer = _awaited(_Plans._infer)
    cartoonize = _awaited(_Plans._cartoonize)
    cartoonize_faces = _awaited(_Plans._cartoonize_faces)
    cartoonize_many = _awaited(_Plans._cartoonize_many)
    generate = _awaited(_Plans._generate)
