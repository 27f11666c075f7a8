"""Cartoonize a video: every face of every frame, through the served encoder and synthesis, smoothed over time.

::

    from cptr.client import CartoonClient
    from cptr.client.video import cartoonize_video, served_stages

    with CartoonClient("127.0.0.1:8001") as client:
        report = cartoonize_video("in.mp4", "out.mp4", served_stages(client, "demo"), smoothing=1.0)

What happens to each frame, in order:

1. **decode** (PyAV, FFmpeg inside its wheel): the video stream's frames as RGB; the audio packets are copied to the
   output untouched (no re-encoding), so the sound, the frame rate, the size and every frame's timestamp are kept;
2. **detect and track** (:mod:`cptr.align`, here in the client): every face above ``contracts.MIN_FACE_SIZE``, at
   most ``MAX_FACES_PER_PHOTO`` per frame, linked to the faces of the frames before
   (:class:`~cptr.align.tracking.FaceTracker`), its keypoints smoothed by a One-Euro filter;
3. **align** each face (:func:`cptr.align.encoder_input`, the served preprocess's own function);
4. **encode** (the served ``encoder_<style>`` [+ ``mapper_<style>_<prompt>``]) the crops of several frames in one
   request, up to the model's batch, with ``window`` requests in flight;
5. **smooth W+** of each track over time (One-Euro again), in frame order;
6. **synthesize** (the served ``synthesis_<style>``), and **paste back** every cartoon into its frame
   (:func:`cptr.align.paste_back`, as the served postprocess does);
7. **encode** the frame (H.264) with its own timestamp. A frame without a face is written as it was decoded.

The output is written under a temporary name beside ``out`` and renamed at the end (:mod:`cptr.io`): an
interrupted run leaves no broken file. Detection and smoothing need the frames in order, on one machine, so they
run here; the networks run on the server, on crops rather than whole frames (a 256 px crop per face). The same
code runs in process with :meth:`cptr.pipeline.Cartoonizer.face_stages` instead of :func:`served_stages`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cptr import contracts as C
from cptr.align import AlignError, Face, aligned_from_transform, detect_landmarks, encoder_input, paste_back
from cptr.align.tracking import FaceTracker, OneEuroFilter, latent_filter
from cptr.client.client import CartoonClient
from cptr.imaging import array_to_uint8
from cptr.io import atomic_path

# Output containers by suffix (the muxer's name: the temporary file's suffix says nothing).
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_SMOOTHING = 1.0
DEFAULT_WINDOW = 4
DEFAULT_CRF = 18  # x264's "visually lossless" end
MAX_FRAME_PIXELS = C.MAX_IMAGE_PIXELS  # a frame is a photo: the same bound
# Where the calling thread's time goes (VideoReport.step_seconds); "wait" is for the server's answers.
STEPS = ("decode", "detect", "align", "wait", "paste", "encode")


class VideoError(ValueError):
    """A file that is not a video PyAV can decode, a video over the bounds, or an output it cannot write."""


def _av() -> Any:
    try:
        import av  # optional heavy dependency (the [video] extra): only the video commands need it
    except ImportError as e:
        raise VideoError(f"video needs PyAV ({e}); install it with: pip install 'cptr[video]'") from None
    return av


def container_format(path: str | Path) -> str:
    """The muxer of an output path, from its suffix; a clear error for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        raise VideoError(f"cannot write {Path(path).name!r}: use one of {', '.join(CONTAINERS)} (H.264 video, the audio copied)")
    return CONTAINERS[suffix]


# --- the networks: served, or in process --------------------------------------------------------


@dataclass(frozen=True)
class FaceStages:
    """The two networks a video needs, however they run: crops -> W+, and W+ -> images."""

    aligned_size: int  # side of the crop the encoder takes
    encode: Callable[[np.ndarray], np.ndarray]  # float32 [N, 3, A, A] in [-1, 1] -> W+ [N, n_latent, style_dim]
    synthesize: Callable[[np.ndarray], np.ndarray]  # W+ -> float32 [N, 3, S, S] in [-1, 1]
    max_batch: int  # faces per call


def served_stages(client: CartoonClient, style: str = "demo", prompt: str | None = None) -> FaceStages:
    """The served ``encoder_<style>`` (then ``mapper_<style>_<prompt>``) and ``synthesis_<style>`` models, called
    through ``client`` (thread-safe: the video keeps several requests in flight)."""
    encoder = client.model_info(C.model_name(C.ENCODER, style))
    synthesis = client.model_info(C.model_name(C.SYNTHESIS, style))
    mapper = client.model_info(C.model_name(C.MAPPER, style, prompt)) if prompt else None
    (enc_in, spec), enc_out = next(iter(encoder.inputs.items())), next(iter(encoder.outputs))
    syn_in, syn_out = next(iter(synthesis.inputs)), next(iter(synthesis.outputs))
    batch = min(m.max_batch_size for m in (encoder, synthesis, *([mapper] if mapper else [])))

    def encode(aligned: np.ndarray) -> np.ndarray:
        w = client.infer(encoder.name, {enc_in: np.ascontiguousarray(aligned, np.float32)}, [enc_out])[enc_out]
        if mapper is not None:
            m_in, m_out = next(iter(mapper.inputs)), next(iter(mapper.outputs))
            w = client.infer(mapper.name, {m_in: w}, [m_out])[m_out]
        return w

    def synthesize(w_plus: np.ndarray) -> np.ndarray:
        return client.infer(synthesis.name, {syn_in: np.ascontiguousarray(w_plus, np.float32)}, [syn_out])[syn_out]

    return FaceStages(int(spec.dims[-1]), encode, synthesize, max(1, batch))


# --- reading and writing ------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as the cartoonizer keeps it."""

    width: int
    height: int
    rate: Fraction | None  # average frame rate
    frames: int  # as the container states it (0: unknown)
    audio: bool
    duration_s: float | None


def probe(path: str | Path) -> VideoInfo:
    """The video stream's size, rate and frame count, and whether there is sound; :class:`VideoError` for a
    file that is not a video."""
    av = _av()
    try:
        with av.open(str(path)) as c:
            if c.format.name == "image2" or c.format.name.endswith("_pipe"):  # FFmpeg reads a still picture as one frame
                raise VideoError(
                    f"{Path(path).name} is a picture ({c.format.name}), not a video; cartoonize it with: cptr client cartoonize"
                )
            if not c.streams.video:
                raise VideoError(f"{Path(path).name} is not a video: FFmpeg finds no video stream in it")
            v = c.streams.video[0]
            duration = float(c.duration) / 1e6 if c.duration else None
            return VideoInfo(v.width, v.height, v.average_rate, int(v.frames or 0), bool(c.streams.audio), duration)
    except av.FFmpegError as e:
        raise VideoError(f"{Path(path).name} is not a video PyAV can read: {e}") from None


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of ``path``'s video stream as uint8 RGB ``[H, W, 3]``."""
    av = _av()
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def write_video(
    path: str | Path,
    frames: list[np.ndarray],
    fps: int | Fraction = 24,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
    crf: int = DEFAULT_CRF,
) -> Path:
    """Write uint8 RGB ``frames`` as H.264 at ``fps``, with an optional mono float32 ``[1, samples]`` AAC track
    (atomically: a temporary name, then a rename). Test clips are made with this."""
    av = _av()
    if not frames:
        raise VideoError("no frames to write")
    h, w = frames[0].shape[:2]
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=container_format(path)) as out:
        v = out.add_stream("libx264", rate=Fraction(fps), options={"crf": str(crf)})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        a = None
        if audio is not None:
            a = out.add_stream("aac", rate=sample_rate)
            a.layout = "mono"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
        if a is not None:
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = sample_rate, 0
            out.mux(a.encode(af))
            out.mux(a.encode())
    return Path(path)


# --- the cartoonizer ----------------------------------------------------------------------------


@dataclass
class _Frame:
    index: int
    time: float
    pts: int | None
    rgb: np.ndarray
    faces: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (track id, crop-to-photo transform)
    boxes: list[np.ndarray] = field(default_factory=list)  # the detector's box of each face (x0, y0, x1, y1)


@dataclass
class _Batch:
    frames: list[_Frame]
    crops: list[np.ndarray] = field(default_factory=list)
    rows: list[tuple[int, float]] = field(default_factory=list)  # (track id, time) of each crop

    @property
    def n_faces(self) -> int:
        return len(self.crops)


@dataclass(frozen=True)
class VideoReport:
    """What :func:`cartoonize_video` did."""

    out: Path
    frames: int
    frames_with_faces: int
    faces: int
    tracks: int
    width: int
    height: int
    rate: Fraction | None
    audio: bool
    seconds: float
    batches: int  # face batches sent (each one encoder and one synthesis call)
    step_seconds: dict[str, float] = field(default_factory=dict)  # time spent in each of STEPS by the calling thread
    boxes: list[list[np.ndarray]] = field(default_factory=list, repr=False)  # per frame: each face's detector box

    @property
    def fps(self) -> float:
        """Frames cartoonized per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else math.nan


def _detect(rgb: np.ndarray, max_faces: int) -> list[Face]:
    try:
        return detect_landmarks(rgb, policy="all", max_faces=max_faces, min_face_size=C.MIN_FACE_SIZE)
    except AlignError:  # no face (or only small ones): the frame passes through
        return []


def cartoonize_video(
    src: str | Path,
    out: str | Path,
    stages: FaceStages,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    window: int = DEFAULT_WINDOW,
    batch: int | None = None,
    max_faces: int = C.MAX_FACES_PER_PHOTO,
    crf: int = DEFAULT_CRF,
    progress: bool = True,
) -> VideoReport:
    """Cartoonize every face of every frame of ``src`` into ``out`` (see the module docstring).

    ``smoothing`` sets the strength of the One-Euro filters on keypoints and W+ (0: off); ``window`` requests (each
    of up to ``batch`` faces, at most the served batch) are in flight at once; ``max_faces`` per frame, the largest.
    """
    av = _av()
    if smoothing < 0 or window < 1 or crf < 0 or not 1 <= max_faces <= C.MAX_FACES_PER_PHOTO:
        raise ValueError(
            f"smoothing must be >= 0, window >= 1, crf >= 0 and max_faces in [1, {C.MAX_FACES_PER_PHOTO}]; "
            f"got {smoothing}, {window}, {crf}, {max_faces}"
        )
    batch = min(batch or stages.max_batch, stages.max_batch)
    fmt = container_format(out)
    info = probe(src)
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise VideoError(
            f"{Path(src).name} is {info.width}x{info.height}, more than {MAX_FRAME_PIXELS / 1e6:.0f} megapixels a frame; scale it down first"
        )
    start = time.perf_counter()
    tracker = FaceTracker(smoothing)
    latents: dict[int, OneEuroFilter] = {}
    counts = {"frames": 0, "with_faces": 0, "faces": 0, "batches": 0}
    timings = dict.fromkeys(STEPS, 0.0)

    @contextlib.contextmanager
    def timed(step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            timings[step] += time.perf_counter() - t0

    boxes: list[list[np.ndarray]] = []

    def smooth_rows(batch_: _Batch, w: np.ndarray) -> np.ndarray:
        if smoothing <= 0:
            return w
        out_w = np.empty_like(w)
        for i, (track, t) in enumerate(batch_.rows):
            f = latents.setdefault(track, latent_filter(smoothing))
            out_w[i] = f(w[i], t)
        return out_w

    def run(batch_: _Batch, before: threading.Event, done: threading.Event) -> np.ndarray | None:
        try:
            w = stages.encode(np.stack(batch_.crops)) if batch_.crops else None
            before.wait()  # W+ is smoothed in frame order: after the batch before this one
            w = smooth_rows(batch_, w) if w is not None else None
        finally:
            done.set()  # also after a failure: the batches after this one must not wait for ever
        return stages.synthesize(w) if w is not None else None

    bar = tqdm(total=info.frames or None, unit="frame", desc="cartoonize video", disable=not progress)
    try:
        with av.open(str(src)) as inp, atomic_path(out) as tmp, av.open(str(tmp), "w", format=fmt) as dst:
            v_in = inp.streams.video[0]
            a_in = inp.streams.audio[0] if inp.streams.audio else None
            rate = v_in.average_rate or v_in.guessed_rate or Fraction(25)
            v_out = dst.add_stream("libx264", rate=rate, options={"crf": str(crf)})
            even = info.width % 2 == 0 and info.height % 2 == 0
            v_out.width, v_out.height, v_out.pix_fmt = info.width, info.height, "yuv420p" if even else "yuv444p"
            time_base = v_in.time_base or Fraction(1, 1) / rate
            v_out.time_base = v_out.codec_context.time_base = time_base
            a_out = dst.add_stream_from_template(a_in) if a_in is not None else None

            def write(batch_: _Batch, future: Future) -> None:
                with timed("wait"):
                    images = future.result()
                cartoons = iter(array_to_uint8(images)) if images is not None else iter(())
                for fr in batch_.frames:
                    rgb = fr.rgb
                    with timed("paste"):
                        for _, transform in fr.faces:
                            rgb = paste_back(rgb, next(cartoons), aligned_from_transform(transform, rgb.shape[:2]))
                    with timed("encode"):
                        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                        vf.pts = fr.pts if fr.pts is not None else round(fr.time / time_base)
                        vf.time_base = time_base
                        dst.mux(v_out.encode(vf))
                    boxes.append(fr.boxes)
                    bar.update(1)

            def frames() -> Iterator[_Frame]:
                index = 0
                for packet in inp.demux(*[s for s in (v_in, a_in) if s is not None]):
                    if packet.stream is a_in:
                        if packet.dts is not None:  # the demuxer's last, empty packet has none
                            packet.stream = a_out
                            dst.mux(packet)
                        continue
                    t0 = time.perf_counter()
                    for frame in packet.decode():
                        t = float(frame.time) if frame.time is not None else index / float(rate)
                        rgb = frame.to_ndarray(format="rgb24")
                        timings["decode"] += time.perf_counter() - t0
                        yield _Frame(index, t, frame.pts, rgb)
                        index += 1
                        t0 = time.perf_counter()

            def batches() -> Iterator[_Batch]:
                current = _Batch([])
                for fr in frames():
                    with timed("detect"):
                        faces = tracker.update(_detect(fr.rgb, max_faces), fr.time, fr.index)
                    if current.n_faces + len(faces) > batch or len(current.frames) >= 2 * batch:
                        yield current
                        current = _Batch([])
                    for track, face in faces:
                        with timed("align"):
                            crop, transform = encoder_input(fr.rgb, face, stages.aligned_size)
                        current.crops.append(crop)
                        current.rows.append((track, fr.time))
                        fr.faces.append((track, transform))
                        fr.boxes.append(face.box.copy())
                    counts["frames"] += 1
                    counts["with_faces"] += bool(faces)
                    counts["faces"] += len(faces)
                    current.frames.append(fr)
                if current.frames:
                    yield current

            pending: deque[tuple[_Batch, Future, threading.Event]] = deque()
            with ThreadPoolExecutor(window, thread_name_prefix="cptr-video") as pool:
                before = threading.Event()
                before.set()
                try:
                    for b in batches():
                        done = threading.Event()
                        pending.append((b, pool.submit(run, b, before, done), done))
                        counts["batches"] += bool(b.crops)
                        before = done
                        while len(pending) >= window:
                            b0, fut, _ = pending.popleft()
                            write(b0, fut)
                    while pending:
                        b0, fut, _ = pending.popleft()
                        write(b0, fut)
                except BaseException:  # interrupted or failed: nothing more is sent, nothing waits
                    for _, fut, event in pending:
                        fut.cancel()
                        event.set()
                    raise
            with timed("encode"):
                dst.mux(v_out.encode())
    except av.FFmpegError as e:
        raise VideoError(f"cannot cartoonize {Path(src).name}: {e}") from None
    finally:
        bar.close()
    return VideoReport(
        Path(out),
        counts["frames"],
        counts["with_faces"],
        counts["faces"],
        tracker._next,
        info.width,
        info.height,
        info.rate,
        info.audio,
        time.perf_counter() - start,
        counts["batches"],
        {k: round(v, 3) for k, v in timings.items()},
        boxes,
    )
