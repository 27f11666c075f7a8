"""Faces across the frames of a video: tracks, and smoothing over time (the One-Euro filter).

Detection runs on every frame; :class:`FaceTracker` links each face to the nearest face of the frames before
(its eye centre within half a face size of where the track was), so a face keeps one track id while it stays
in view, and smooths each track's four alignment keypoints (eye centres, mouth corners) with a
:class:`OneEuroFilter`: strong smoothing while a face holds still (the detector's jitter would make the aligned
crop, and so the cartoon, shake), little while it moves (no lag behind a turning head). The filter takes any
array, so the video client smooths each track's W+ with it too.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose cutoff rises with the speed
of the signal: ``cutoff = min_cutoff + beta * speed``. ``smoothing`` (the ``--smoothing`` of ``cptr client
cartoonize-video``) scales it: ``min_cutoff = MIN_CUTOFF_HZ / smoothing``, so 2 smooths twice as long as 1,
and 0 turns the filter off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .landmarks import Face

# At smoothing 1: a still signal keeps what changes slower than 1 Hz; a keypoint moving one face size per
# second raises the cutoff by BETA_KEYPOINTS Hz; W+ moving by one (RMS over its entries) per second by BETA_LATENT Hz.
MIN_CUTOFF_HZ = 1.0
BETA_KEYPOINTS = 4.0
BETA_LATENT = 2.0
DERIVATIVE_CUTOFF_HZ = 1.0


def _alpha(dt: float, cutoff: float) -> float:
    """The exponential smoothing weight of a first-order low-pass filter with ``cutoff`` (Hz) at step ``dt`` (s)."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter of an array signal (any shape), sampled at increasing times in seconds.

    The speed that raises the cutoff is the RMS of the (smoothed) derivative over all entries, divided by
    ``scale`` (a face's size, for keypoints in pixels): one cutoff for the whole array, so the points of one
    face, or the entries of one W+, move together.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = DERIVATIVE_CUTOFF_HZ):
        if min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
            raise ValueError(f"min_cutoff and d_cutoff must be > 0 and beta >= 0, got {min_cutoff}, {beta}, {d_cutoff}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._dx is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"the signal changed shape from {self._x.shape} to {x.shape}")
        dt = float(t) - self._t
        if dt <= 0:  # a repeated or out-of-order timestamp: keep the state, answer with it
            return self._x.copy()
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(dt, self.d_cutoff) * (dx - self._dx)
        speed = float(np.sqrt(np.mean(np.square(self._dx)))) / max(float(scale), 1e-9)
        a = _alpha(dt, self.min_cutoff + self.beta * speed)
        self._x = self._x + a * (x - self._x)
        self._t = float(t)
        return self._x.copy()


def keypoint_filter(smoothing: float) -> OneEuroFilter:
    """The filter of one track's keypoints at ``smoothing`` (> 0)."""
    return OneEuroFilter(MIN_CUTOFF_HZ / smoothing, BETA_KEYPOINTS)


def latent_filter(smoothing: float) -> OneEuroFilter:
    """The filter of one track's W+ at ``smoothing`` (> 0)."""
    return OneEuroFilter(MIN_CUTOFF_HZ / smoothing, BETA_LATENT)


def with_keypoints(face: Face, keypoints: np.ndarray) -> Face:
    """``face`` with its eye centres and mouth corners (``(4, 2)``, as :meth:`Face.keypoints`) replaced."""
    k = np.asarray(keypoints, np.float64)
    return Face(face.landmarks, k[0].copy(), k[1].copy(), k[2].copy(), k[3].copy(), face.box, face.score, face.backend)


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    center: np.ndarray  # eye centre in the last frame it was seen in, photo pixels
    size: float  # its Face.size there
    last_frame: int
    keypoints: OneEuroFilter | None = field(default=None, repr=False)


class FaceTracker:
    """Links each frame's faces to tracks and smooths their keypoints (see the module docstring).

    ``update(faces, t, frame)`` takes a frame's faces (largest first, as :func:`detect_landmarks` gives them) and
    returns ``(track id, face)`` pairs in the same order, each face with smoothed keypoints (unchanged at
    ``smoothing`` 0). A track unseen for more than ``max_missing`` frames ends; a face that comes back later starts a
    new track, with fresh filters. Track ids are never reused.
    """

    def __init__(self, smoothing: float = 1.0, max_missing: int = 5, match: float = 0.5):
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0 (0 turns it off), got {smoothing}")
        self.smoothing, self.max_missing, self.match = float(smoothing), int(max_missing), float(match)
        self.tracks: dict[int, Track] = {}
        self._next = 0

    def update(self, faces: list[Face], t: float, frame: int) -> list[tuple[int, Face]]:
        self.tracks = {i: tr for i, tr in self.tracks.items() if frame - tr.last_frame <= self.max_missing}
        free = dict(self.tracks)
        out = []
        for face in faces:
            best, best_d = None, math.inf
            for tr in free.values():
                d = float(np.hypot(*(face.eye_center - tr.center)))
                if d < self.match * max(face.size, tr.size) and d < best_d:
                    best, best_d = tr, d
            if best is None:
                best = Track(self._next, face.eye_center, face.size, frame)
                if self.smoothing > 0:
                    best.keypoints = keypoint_filter(self.smoothing)
                self.tracks[best.id] = best
                self._next += 1
            else:
                del free[best.id]
            best.center, best.size, best.last_frame = face.eye_center, face.size, frame
            if best.keypoints is not None:
                face = with_keypoints(face, best.keypoints(face.keypoints(), t, scale=face.size))
            out.append((best.id, face))
        return out
