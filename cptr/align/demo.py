"""Render the alignment demo picture (docs/align_astronaut.png): photo, aligned crop, paste-back."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
from PIL import Image

from cptr.io import atomic_write_bytes

from .ffhq import align_face, paste_back
from .landmarks import detect_landmarks


def _toy_stylize(crop: np.ndarray) -> np.ndarray:
    """A visible stand-in for a generator: edge-preserving smoothing, posterized colours."""
    smooth = cv2.stylization(crop, sigma_s=40, sigma_r=0.35)
    return ((smooth // 48) * 48 + 24).astype(np.uint8)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((24, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def render_demo(photo: np.ndarray, panel: int = 320, backend: str = "mediapipe") -> np.ndarray:
    """Three panels side by side: photo with FFHQ quad and keypoints, aligned crop, paste-back."""
    face = detect_landmarks(photo, backend=backend)[0]
    aligned = align_face(photo, face, size=256)
    pasted = paste_back(photo, _toy_stylize(aligned.crop), aligned, feather=0.15)

    marked = photo.copy()
    cv2.polylines(marked, [np.rint(aligned.quad).astype(np.int32)], True, (255, 220, 0), 2, cv2.LINE_AA)
    for p in face.keypoints():
        cv2.circle(marked, tuple(np.rint(p).astype(int)), 3, (0, 255, 0), -1, cv2.LINE_AA)

    def fit(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        s = panel / max(h, w)
        return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)

    panels = [
        _label(fit(marked), f"photo + FFHQ quad ({backend})"),
        _label(fit(aligned.crop), "align_face: 256x256 crop"),
        _label(fit(pasted), "paste_back(toy-stylized crop)"),
    ]
    height = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0)), constant_values=255) for p in panels]
    return np.concatenate(panels, axis=1)[:, :-4]


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (public domain, NASA), shipped in the scikit-image package."""
    try:
        from skimage import data
    except ImportError as e:
        raise ImportError(f"the demo photo comes from scikit-image ({e}); pip install 'cptr[dev]'") from None
    return np.ascontiguousarray(data.astronaut())


def write_demo(path: str | os.PathLike, backend: str = "mediapipe") -> np.ndarray:
    """Render the demo for the astronaut photo and write it as PNG to ``path`` (atomically)."""
    picture = render_demo(astronaut(), backend=backend)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())
    return picture
