"""What the ``cptr ui`` page does, without the page: requests to the CPTR server, timed, in plain words.

:class:`UIBackend` holds a :class:`~cptr.client.CartoonClient` and nothing else (no model, no
weights): every picture the page shows comes from the Triton server it talks to. Its methods never
raise on a refused or failed request; they return an :class:`Outcome` whose ``error`` is a sentence
meant for the page (:func:`friendly_error`), so no stack trace reaches a browser.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cptr import contracts as C
from cptr.client import CartoonClient, errors, parse_mix, parse_seeds
from cptr.client.video import DEFAULT_SMOOTHING, VideoError, cartoonize_video, probe, served_stages
from cptr.serving.stages import encode_png, to_uint8

log = logging.getLogger("cptr.ui")

MAX_FACES = 64  # seeds per "Random faces" request from the page
MAX_VIDEO_SECONDS = 60  # the page cartoonizes short clips; longer ones: cptr client cartoonize-video
PREPROCESS_PREFIX = C.PREPROCESS  # "preprocess" (256 px crop) or "preprocess_<size>"
START_HINT = "cptr serve --model-repository triton_repo"


# --- what the server serves --------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """Styles and text edits the server reports, read from its model names."""

    models: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()  # every style with a generate_<style> ensemble
    prompts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # cartoonize styles -> text edits

    @property
    def photo_styles(self) -> list[str]:
        """Styles that can cartoonize a photo (those exported with an encoder)."""
        return sorted(self.prompts)

    @property
    def preprocess(self) -> str | None:
        """The served face-alignment model (its output is the aligned crop), if any."""
        found = sorted(m for m in self.models if m == PREPROCESS_PREFIX or m.startswith(PREPROCESS_PREFIX + "_"))
        return PREPROCESS_PREFIX if PREPROCESS_PREFIX in found else (found[0] if found else None)


def catalog(models: Sequence[str]) -> Catalog:
    """Read styles and prompts from model names: ``generate_<style>``, ``cartoonize_<style>[_<prompt>]``.

    A style name may itself contain ``_``; each cartoonize model belongs to the longest served
    style that prefixes it (``cartoonize_a_b`` is style ``a_b`` when ``a_b`` is served, else ``a`` + prompt ``b``).
    """
    models = tuple(sorted(models))
    styles = C.served_styles(models)
    prompts: dict[str, set[str]] = {}
    for m in models:
        if not m.startswith(C.CARTOONIZE_PREFIX):
            continue
        rest = m.removeprefix(C.CARTOONIZE_PREFIX)
        owners = [s for s in styles if rest == s or rest.startswith(s + "_")]
        if not owners:
            continue
        style = max(owners, key=len)
        edits = prompts.setdefault(style, set())
        if rest != style:
            edits.add(rest[len(style) + 1 :])
    return Catalog(models, tuple(styles), {s: tuple(sorted(p)) for s, p in sorted(prompts.items())})


# --- errors in plain words ---------------------------------------------------------------------


def friendly_error(exc: BaseException, url: str = "", protocol: str = "grpc") -> str:
    """One or two sentences for the page; never a traceback."""
    detail = _first_line(str(exc))
    if isinstance(exc, errors.TooManyFacesError):
        return f"Too many faces in this photo for one request. Crop it to fewer people, or tick 'Largest face only'. ({detail})"
    if isinstance(exc, VideoError):
        return f"This video cannot be cartoonized here: {detail}"
    if isinstance(exc, errors.FaceTooSmallError):
        return f"No face big enough: the server found a face, but it is too small to cartoonize. Use a closer photo of the face. ({detail})"
    if isinstance(exc, errors.NoFaceError):
        return "No face found in this photo. Use a photo with faces clearly visible and looking at the camera."
    if isinstance(exc, errors.ImageTooLargeError):
        return f"This photo is too large for the server. Use a smaller photo. ({detail})"
    if isinstance(exc, errors.BadImageError):
        return "This file is not an image the server can read. Upload a JPEG, PNG or WebP photo."
    if isinstance(exc, errors.ServerUnavailableError):
        return (
            f"The CPTR server at {url} ({protocol}) is not reachable. Start it with `{START_HINT}` "
            "(or run `cptr ui --serve triton_repo`), then press Refresh."
        )
    if isinstance(exc, errors.RequestTimeoutError):
        return "The server did not answer in time; it may be busy. Try again in a moment."
    if isinstance(exc, errors.UnknownStyleError):
        return f"The server does not serve this style or text edit (any more). Press Refresh to reload what it serves. ({detail})"
    if isinstance(exc, errors.BadRequestError):
        return f"The server refused the request: {detail}"
    if isinstance(exc, errors.ServerError):
        return f"The server failed on this request (not a problem with your photo): {detail}"
    if isinstance(exc, errors.CartoonError):
        return f"The request failed: {detail}"
    if isinstance(exc, ValueError):  # the page's own checks (seed lists, mix layer)
        return detail[:1].upper() + detail[1:]
    return f"Something went wrong in the page ({type(exc).__name__}); see the cptr ui log."


def _first_line(text: str, limit: int = 300) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- results -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One page action: files of the pictures (PNG, as the server sent them), timings, or an error."""

    error: str | None = None
    files: dict[str, Path] = field(default_factory=dict)  # role -> file ("aligned", "cartoon", "face_<n>", "pasted", "video"...)
    notes: list[str] = field(default_factory=list)  # what a long action did, in words
    latency_ms: dict[str, float] = field(default_factory=dict)  # request -> milliseconds, measured by this client

    @property
    def ok(self) -> bool:
        return self.error is None

    def latency_text(self) -> str:
        if not self.latency_ms:
            return ""
        parts = [f"{what} {ms:.0f} ms" for what, ms in self.latency_ms.items()]
        return "Latency measured by the page's client: " + " · ".join(parts)


class UIBackend:
    """The page's only link to the models: a client of the CPTR Triton server at ``url``."""

    def __init__(
        self,
        url: str | None = None,
        protocol: str = "grpc",
        *,
        timeout_s: float = 60.0,
        retries: int = 1,
        out_dir: str | Path | None = None,
    ):
        self._settings = {"timeout_s": timeout_s, "retries": retries, "backoff_s": 0.2}
        self.client = CartoonClient(url, protocol, **self._settings)  # type: ignore[arg-type]
        self.url, self.protocol = self.client.url, self.client.protocol
        self._own_dir = out_dir is None
        self.out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="cptr-ui-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pre: str | None = None  # the alignment model's name, once known
        self._pre_known = False

    @property
    def address(self) -> str:
        return f"{self.protocol}://{self.url}"

    def close(self) -> None:
        self.client.close()
        if self._own_dir:
            shutil.rmtree(self.out_dir, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------
    def _fail(self, exc: BaseException, outcome: Outcome) -> Outcome:
        if not isinstance(exc, (errors.CartoonError, ValueError)):
            log.exception("cptr ui: unexpected error")  # the operator's log keeps the traceback; the page does not
        if isinstance(exc, errors.ServerUnavailableError) and self.protocol == "grpc":
            # A gRPC channel that failed to connect waits longer and longer (up to minutes) before it
            # tries again, even once the server is back: the next action starts on a fresh channel.
            old, self.client = self.client, CartoonClient(self.url, "grpc", **self._settings)  # type: ignore[arg-type]
            old.close()
        outcome.error = friendly_error(exc, self.url, self.protocol)
        return outcome

    def _folder(self, max_age_s: float = 3600.0) -> Path:
        """A fresh folder for one request's files; folders older than ``max_age_s`` are removed."""
        now = time.time()
        with self._lock:
            for old in self.out_dir.iterdir():
                try:
                    if now - old.stat().st_mtime > max_age_s:
                        shutil.rmtree(old, ignore_errors=True)
                except OSError:
                    pass
        folder = self.out_dir / uuid.uuid4().hex[:12]
        folder.mkdir()
        return folder

    @contextmanager
    def _session(self) -> Iterator[CartoonClient]:
        """The client for one page action.

        gRPC: the shared client (an idle gRPC channel does not hold up Triton's shutdown). HTTP: a
        client of its own, closed after the action, because Triton's graceful shutdown waits (up to
        its exit timeout, then kills its models) for every open HTTP connection, and a kept-alive
        connection of an idle page would be one.
        """
        if self.protocol == "grpc":
            yield self.client
            return
        client = CartoonClient(self.url, "http", **self._settings)  # type: ignore[arg-type]
        try:
            yield client
        finally:
            client.close()

    @contextmanager
    def _timed(self, outcome: Outcome, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            outcome.latency_ms[what] = (time.perf_counter() - t0) * 1000.0

    # --- what the server serves ------------------------------------------------------------
    def catalog(self) -> tuple[Catalog, str | None]:
        """What the server serves now, and an error sentence if it cannot be asked."""
        try:
            with self._session() as client:
                found = catalog(client.models())
            self._pre, self._pre_known = found.preprocess, True
            return found, None
        except Exception as e:  # noqa: BLE001 - shown on the page
            return Catalog(), self._fail(e, Outcome()).error

    def mix_layers(self, style: str) -> int | None:
        """Number of W+ entries of ``style`` (the crossover layer is below it), or None if unknown."""
        try:
            with self._session() as client:
                info = client.model_info(C.model_name(C.STYLE_MIX, style))
            return int(next(iter(info.outputs.values())).dims[0])
        except Exception:  # noqa: BLE001 - the page then keeps its slider as it is
            return None

    # --- requests --------------------------------------------------------------------------
    def cartoonize(
        self, photo: str | Path | bytes | None, style: str, prompt: str | None = None, paste_back: bool = False, largest: bool = False
    ) -> Outcome:
        """Aligned crop (the server's ``preprocess``), every face's cartoon and, with ``paste_back``, the photo with
        every cartoon pasted back (``largest``: the largest face only).

        Two requests: the alignment model alone for the largest face (its crop is what the encoder sees; a photo
        without a face stops here), then the ``cartoonize_<style>[_<prompt>]`` ensemble, which answers with each
        face's PNG (largest first) and, with ``paste_back``, the composite.
        """
        out = Outcome()
        try:
            if photo is None or photo == b"":
                raise ValueError("upload a photo (or take one with the webcam) first")
            if not style:
                raise ValueError("pick a style first (the server reported none that can cartoonize a photo)")
            data = photo if isinstance(photo, bytes) else Path(photo).read_bytes()
            model = C.cartoonize_model(style, prompt or None)
            folder = self._folder()
            with self._session() as client:
                align_model = self._preprocess_model(client)
                if align_model is not None:
                    one = {C.IMAGE_BYTES.name: np.array([[data]], dtype=np.object_), C.LARGEST.name: np.ones((1, 1), np.int32)}
                    with self._timed(out, "align"):
                        aligned = client.infer(align_model, one, [C.ALIGNED.name])
                    out.files["aligned"] = _write_png(folder / "aligned.png", aligned[C.ALIGNED.name][0])
                with self._timed(out, "cartoonize"):
                    result = client.cartoonize_faces(data, style, prompt or None, paste_back=paste_back, output="png", largest=largest)
            stem = model.removeprefix(C.CARTOONIZE_PREFIX)
            for i, png in enumerate(result.faces):
                out.files["cartoon" if i == 0 else f"face_{i + 1}"] = _write_bytes(folder / f"cartoon_{stem}_{i + 1}.png", png)
            if paste_back and result.composite is not None:
                out.files["pasted"] = _write_bytes(folder / f"pasted_{stem}.png", result.composite)
            return out
        except Exception as e:  # noqa: BLE001 - shown on the page in plain words
            return self._fail(e, out)

    def cartoonize_video(
        self, video: str | Path | None, style: str, prompt: str | None = None, smoothing: float = DEFAULT_SMOOTHING
    ) -> Outcome:
        """Every face of every frame of ``video`` (at most :data:`MAX_VIDEO_SECONDS`), through the server's encoder and
        synthesis (:func:`cptr.client.video.cartoonize_video`); the result is ``files["video"]`` (MP4)."""
        out = Outcome()
        try:
            if not video:
                raise ValueError("upload a video first")
            if not style:
                raise ValueError("pick a style first (the server reported none that can cartoonize a photo)")
            info = probe(video)
            seconds = info.duration_s or (info.frames / float(info.rate) if info.rate else 0.0)
            if seconds > MAX_VIDEO_SECONDS:
                raise ValueError(
                    f"this video lasts {seconds:.0f} s; the page takes up to {MAX_VIDEO_SECONDS} s. "
                    "Cut it, or use: cptr client cartoonize-video IN -o OUT"
                )
            target = self._folder() / f"{Path(video).stem}_{style}{'_' + prompt if prompt else ''}.mp4"
            with self._session() as client, self._timed(out, "video"):
                report = cartoonize_video(video, target, served_stages(client, style, prompt or None), smoothing=smoothing, progress=False)
            out.files["video"] = target
            out.notes.append(
                f"{report.frames} frames, {report.frames_with_faces} with faces, {report.tracks} face track(s); {report.fps:.1f} frames/s"
            )
            return out
        except Exception as e:  # noqa: BLE001 - shown on the page in plain words
            return self._fail(e, out)

    def _preprocess_model(self, client: CartoonClient) -> str | None:
        """The served alignment model, looked up once (and again by :meth:`catalog`, the page's Refresh)."""
        if not self._pre_known:
            self._pre, self._pre_known = catalog(client.models()).preprocess, True
        return self._pre

    def generate(self, seeds: str, style: str, mix_seed: int | None = None, mix_layer: int = 0) -> Outcome:
        """Random faces, one PNG per seed; ``mix_layer`` > 0 takes W+ entries from that layer on from ``mix_seed``."""
        out = Outcome()
        try:
            if not style:
                raise ValueError("pick a style first (the server reported none)")
            seed_list = parse_seeds(seeds)
            if len(seed_list) > MAX_FACES:
                raise ValueError(f"at most {MAX_FACES} faces per request from this page, got {len(seed_list)}")
            mix = parse_mix((int(mix_seed or 0), int(mix_layer))) if int(mix_layer or 0) > 0 else None
            folder = self._folder()
            with self._session() as client, self._timed(out, f"generate {len(seed_list)} face{'s' if len(seed_list) != 1 else ''}"):
                pngs = client.generate(seed_list, style, mix=mix, output="png")
            for seed, png in zip(seed_list, pngs):
                out.files[f"face_{seed}"] = _write_bytes(folder / f"{style}_seed{seed}.png", png)  # type: ignore[arg-type]
            return out
        except Exception as e:  # noqa: BLE001 - shown on the page in plain words
            return self._fail(e, out)


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write_png(path: Path, image: np.ndarray) -> Path:
    """A float [3, S, S] tensor in [-1, 1] as PNG, with the server's own conversion."""

    return _write_bytes(path, encode_png(to_uint8(np.asarray(image))))
