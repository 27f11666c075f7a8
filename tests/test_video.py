"""Video without a server: the One-Euro filter and the face tracker, the video plumbing (windowed requests, W+
smoothed in frame order, an interrupted run, files that are not videos), the flicker measure and the test clips.

The served path (the real server, the real networks) is tested in tests/test_serving.py; here the two networks
are stand-ins (``FaceStages`` of NumPy functions) so that what is under test is the plumbing around them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cptr import contracts as C
from cptr.align import Face, detect_landmarks
from cptr.align.tracking import FaceTracker, OneEuroFilter, keypoint_filter
from cptr.bench.video import flicker_ratio
from cptr.client.video import FaceStages, VideoError, cartoonize_video, probe, read_frames, write_video
from cptr.data import clips

pytest.importorskip("av")
FPS = 24


# --------------------------------------------------------------------------- filters and tracks


def test_one_euro_filter_steadies_a_still_signal_and_follows_a_moving_one() -> None:
    """Detector jitter on a still 40 px face (noise of 1 px, 24 samples a second): the filtered signal's spread is under
    half the raw one's (measured 0.44). The face moving at 100 px/s: the filter lags it by under 2 px (measured 1.2;
    the same filter without its speed term lags by 16 px), because its cutoff rises with the speed."""
    rng = np.random.default_rng(0)
    t = np.arange(96) / FPS
    f = keypoint_filter(1.0)
    still = np.array([f(np.array([50.0 + n]), s, scale=40.0)[0] for n, s in zip(rng.normal(0, 1, len(t)), t)])
    assert still[24:].std() < 0.5, still[24:].std()
    for beta, most in ((4.0, 2.0), (0.0, None)):
        g = OneEuroFilter(1.0, beta)
        lag = [100 * s - g(np.array([100 * s]), s, scale=40.0)[0] for s in t][-1]
        if most is not None:
            assert 0 <= lag < most, lag
        else:
            assert lag > 12, lag  # the same filter without the speed term
    with pytest.raises(ValueError, match="changed shape"):
        f(np.zeros(2), 10.0)


def _face(cx: float, cy: float, size: float = 40.0) -> Face:
    k = np.array([[cx - size / 2, cy], [cx + size / 2, cy], [cx - size / 3, cy + size], [cx + size / 3, cy + size]])
    box = np.array([cx - size, cy - size, cx + size, cy + 1.5 * size])
    return Face(k.copy(), k[0], k[1], k[2], k[3], box, 0.9, "test")


def test_tracker_keeps_each_face_on_its_track() -> None:
    """Two faces walking past each other slowly keep their ids; a face gone for longer than max_missing comes back
    on a new track; smoothing 0 leaves the keypoints exactly as detected, smoothing 1 steadies them."""
    tracker = FaceTracker(smoothing=0.0, max_missing=2)
    ids = []
    for i in range(10):
        faces = [_face(100 + 4 * i, 100), _face(300 - 4 * i, 120)]
        found = tracker.update(faces, i / FPS, i)
        ids.append([tid for tid, _ in found])
        assert all(np.array_equal(f.keypoints(), g.keypoints()) for (_, f), g in zip(found, faces))
    assert ids == [[0, 1]] * 10
    assert [tid for tid, _ in tracker.update([_face(300 - 4 * 10, 120)], 10 / FPS, 10)] == [1]  # face 0 missing now
    assert [tid for tid, _ in tracker.update([_face(140, 100), _face(260, 120)], 11 / FPS, 11)] == [0, 1]  # back in time
    assert [tid for tid, _ in tracker.update([_face(140, 100)], 15 / FPS, 15)] == [2]  # gone for 4 > 2 frames: a new track
    rng = np.random.default_rng(1)
    smooth = FaceTracker(smoothing=1.0)
    eyes = [smooth.update([_face(200 + rng.normal(0, 1.5), 150)], i / FPS, i)[0][1].eye_center[0] for i in range(48)]
    assert np.std(eyes[12:]) < 0.5 * 1.5, np.std(eyes[12:])  # under half the jitter (measured 0.66 px of 1.5)


# --------------------------------------------------------------------------- the video plumbing


class StandIn:
    """Two NumPy functions in place of the networks: W+ is the crop's mean colour, the image is that colour. It
    counts the encode calls in flight at once; each call takes ``delay`` seconds (a network's time), and every third
    one, from the first, ``slow`` times that: later requests come back before earlier ones."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None, slow: float = 6.0):
        self.delay, self.fail_at, self.slow = delay, fail_at, slow
        self.in_flight = self.most = self.calls = 0
        self.synthesized: list[np.ndarray] = []  # every W+ batch synthesize was given
        self.lock = threading.Lock()

    def encode(self, aligned: np.ndarray) -> np.ndarray:
        with self.lock:
            self.in_flight += 1
            self.calls += 1
            self.most = max(self.most, self.in_flight)
            call = self.calls
        try:
            time.sleep(self.delay * (self.slow if call % 3 == 1 else 1.0))
            if self.fail_at is not None and call >= self.fail_at:
                raise KeyboardInterrupt  # as if Ctrl-C arrived while this request was out
            return np.repeat(aligned.mean(axis=(2, 3))[:, None, :], 2, axis=1).astype(np.float32)
        finally:
            with self.lock:
                self.in_flight -= 1

    def synthesize(self, w_plus: np.ndarray) -> np.ndarray:
        with self.lock:
            self.synthesized.append(w_plus.copy())
        return np.broadcast_to(w_plus[:, 0, :, None, None], (len(w_plus), 3, 16, 16)).astype(np.float32)

    def stages(self, batch: int = 2) -> FaceStages:
        return FaceStages(64, self.encode, self.synthesize, batch)


@pytest.fixture(scope="module")
def head_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 frames of a wall, then a rendered head turning (16 frames, 160 px), 24 fps, with a tone."""
    frames = [np.full((160, 160, 3), 100, np.uint8)] * 3 + clips.head_turn(11, 16, 160)[0]
    return write_video(tmp_path_factory.mktemp("clip") / "head.mp4", frames, FPS, audio=clips.tone(len(frames) / FPS))


def test_requests_in_flight_and_latents_smoothed_in_frame_order(head_clip: Path, tmp_path: Path) -> None:
    """With window 4, several encode requests are out at once (the stand-in takes 30 to 180 ms each, later requests
    often answered first); with window 1 never more than one. W+ is smoothed in frame order either way: the two
    outputs are the same video, frame for frame.
    Frames without a face are the input's (up to H.264's loss); the frame count and the audio are kept."""
    outs, synthesized = {}, {}
    for window in (1, 4):
        stand_in = StandIn(delay=0.03)
        report = cartoonize_video(head_clip, tmp_path / f"w{window}.mp4", stand_in.stages(), window=window, smoothing=1.0, progress=False)
        assert (report.frames, report.frames_with_faces, report.tracks, report.audio) == (19, 16, 1, True)
        assert stand_in.most == 1 if window == 1 else stand_in.most >= 2, stand_in.most
        outs[window] = list(read_frames(tmp_path / f"w{window}.mp4"))
        rows = np.concatenate(stand_in.synthesized).reshape(report.faces, -1)
        synthesized[window] = rows[np.lexsort(rows.T[::-1])]  # synthesis calls may finish in any order
    # The smoothed W+ are the same numbers (smoothing out of frame order would change them) ...
    np.testing.assert_array_equal(synthesized[1], synthesized[4])
    frames_in = list(read_frames(head_clip))
    assert len(outs[1]) == len(outs[4]) == len(frames_in) == 19
    # ... and so the videos are the same, frame for frame (H.264 at the default crf: within one grey level on average).
    diffs = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(outs[1], outs[4])]
    assert max(diffs) < 1.0, diffs
    for a, b in zip(frames_in[:3], outs[4][:3]):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2
    assert min(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames_in[3:], outs[4][3:])) > 2
    assert probe(tmp_path / "w4.mp4").rate == FPS


def test_an_interrupted_run_leaves_no_file(head_clip: Path, tmp_path: Path) -> None:
    """Ctrl-C while the third request is out: the exception comes through, no output file appears, no temporary file
    is left beside it, and a file that was there before keeps its content."""
    out = tmp_path / "toon.mp4"
    with pytest.raises(KeyboardInterrupt):
        cartoonize_video(head_clip, out, StandIn(fail_at=3).stages(), window=2, progress=False)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"an earlier result")
    with pytest.raises(KeyboardInterrupt):
        cartoonize_video(head_clip, out, StandIn(fail_at=3).stages(), window=2, progress=False)
    assert out.read_bytes() == b"an earlier result" and list(tmp_path.iterdir()) == [out]


def test_files_that_are_not_videos(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("plain text, not a video\n" * 50)
    picture = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(clips.render(3, 64)).save(picture)
    for path, text in ((notes, "is not a video"), (picture, "is a picture")):
        with pytest.raises(VideoError, match=text):
            cartoonize_video(path, tmp_path / "out.mp4", StandIn().stages(), progress=False)
    with pytest.raises(VideoError, match=r"use one of \.mp4"):
        cartoonize_video(picture, tmp_path / "out.avi", StandIn().stages(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4", "photo.png"]


# --------------------------------------------------------------------------- measures and clips


def test_flicker_ratio() -> None:
    """1 when the output changes as the input does, 0 when it stands still, 2 when it changes twice as much; only
    inside the boxes, and only where a frame has one."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 100, (20, 20, 3)).astype(np.uint8) for _ in range(4)]
    boxes = [None, (0, 0, 10, 10), (0, 0, 10, 10), None]
    assert flicker_ratio(frames, frames, boxes) == pytest.approx(1.0)
    assert flicker_ratio(frames, [frames[0]] * 4, boxes) == 0.0
    doubled = [np.clip(f.astype(int) * 2, 0, 255).astype(np.uint8) for f in frames]
    assert flicker_ratio(frames, doubled, boxes) == pytest.approx(2.0)
    outside = [f.copy() for f in frames]
    for f in outside:
        f[15:, 15:] = rng.integers(0, 255, (5, 5, 3))
    assert flicker_ratio(frames, outside, boxes) == pytest.approx(1.0)


def test_group_photo_has_four_faces_of_different_sizes() -> None:
    """The test group photo holds what its tests claim: four faces, all above the minimum size, no two alike in size."""
    sizes = sorted(f.size for f in detect_landmarks(clips.group_photo(), policy="all", min_face_size=C.MIN_FACE_SIZE))
    assert len(sizes) == 4 and sizes[0] >= C.MIN_FACE_SIZE and min(np.diff(sizes)) > 4, sizes


def test_cli_refuses_a_file_that_is_not_a_video_before_asking_a_server(tmp_path: Path) -> None:
    """`cptr client cartoonize-video` on a text file: exit 1 with the file's name and why, even with no server at the
    given address (the file is checked first), and no output file."""
    from typer.testing import CliRunner

    from cptr.cli import app
    from cptr.serving.server import free_port

    notes = tmp_path / "notes.mp4"
    notes.write_text("plain text, not a video\n" * 50)
    out = tmp_path / "out.mp4"
    r = CliRunner().invoke(app, ["client", "cartoonize-video", str(notes), "-o", str(out), "--url", f"127.0.0.1:{free_port()}"])
    assert r.exit_code == 1 and f"VideoError: {notes}: notes.mp4 is not a video" in r.output, r.output
    assert not out.exists()
