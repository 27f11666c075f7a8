"""Resampling helpers shared by detection and alignment.

Coordinates follow OpenCV: pixel ``(i, j)`` has its centre at ``x = i, y = j`` and covers
``[i - 0.5, i + 0.5]``. "Edge" coordinates (``x + 0.5``) are used only where noted.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def check_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` uint8 array, or raise a clear ValueError."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}; decode photos with cptr.align.load_image")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"{name} must be an (H, W, 3) uint8 RGB array, got shape {image.shape} dtype {image.dtype}; "
            "decode photos with cptr.align.load_image, which converts any mode to 8-bit RGB"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


def downscale_longest(image: np.ndarray, longest: int) -> tuple[np.ndarray, float, float]:
    """Shrink ``image`` (area filter) so its longest side is at most ``longest``.

    Returns ``(small, fx, fy)`` with ``small_edge = photo_edge * f`` along each axis.
    """
    h, w = image.shape[:2]
    if max(h, w) <= longest:
        return image, 1.0, 1.0
    f = longest / max(h, w)
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return small, sw / w, sh / h


def crop_square_resized(src: np.ndarray, x0: float, y0: float, side: float, out: int) -> np.ndarray:
    """Resample the square ``[x0, x0 + side)^2`` (edge coordinates) of ``src`` to ``out x out``.

    The square may extend past the image (filled with black). Downscaling by more than 2x first
    box-filters the covered region by an integer factor, so the result is not aliased.
    """
    h, w = src.shape[:2]
    ix0, iy0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
    ix1, iy1 = min(math.ceil(x0 + side), w), min(math.ceil(y0 + side), h)
    if ix1 <= ix0 or iy1 <= iy0:
        return np.zeros((out, out) + src.shape[2:], src.dtype)
    region = src[iy0:iy1, ix0:ix1]
    k = int(side // out) if side >= 2 * out else 1  # leaves a bilinear step of less than 2x
    if k > 1 and region.shape[0] >= k and region.shape[1] >= k:
        rh, rw = region.shape[0] // k, region.shape[1] // k
        region = cv2.resize(region[: rh * k, : rw * k], (rw, rh), interpolation=cv2.INTER_AREA)
    else:
        k = 1
    s = side / out / k  # source (region, shrunk) pixels per output pixel
    # output centre i -> photo edge x0 + (i + 0.5) * side / out -> region centre (edge - ix0) / k - 0.5
    m = np.array([[s, 0.0, (x0 - ix0) / k + 0.5 * s - 0.5], [0.0, s, (y0 - iy0) / k + 0.5 * s - 0.5]])
    return cv2.warpAffine(region, m, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points through a ``3x3`` matrix (with the projective divide)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {pts.shape}")
    hom = pts @ matrix[:, :2].T + matrix[:, 2]
    return hom[..., :2] / hom[..., 2:3]
