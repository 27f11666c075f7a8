"""FFHQ alignment (the recipe of NVlabs/ffhq-dataset) and the inverse paste-back.

The recipe, from eye centres and mouth corners::

    e2e = eye_right - eye_left            e2m = mouth_avg - eye_avg
    x = e2e - flipud(e2m) * [-1, 1]       (half-side vector, along the eyes)
    x = x / |x| * max(2.0 |e2e|, 1.8 |e2m|)
    y = flipud(x) * [-1, 1]               (x turned 90 degrees, pointing down the face)
    c = eye_avg + 0.1 * e2m               quad = [c - x - y, c - x + y, c + x + y, c + x - y]

The quad's corners become the crop's top-left, bottom-left, bottom-right and top-right corners.
Large faces are first box-shrunk by an integer factor; where the quad leaves the photo, the photo
is reflect-padded and the padding is blurred and faded to the median colour, as in FFHQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from cptr.contracts import ALIGNED_SIZE

from ._geometry import apply_affine, check_rgb
from .errors import AlignError
from .landmarks import Face


def ffhq_quad(face: Face) -> np.ndarray:
    """The FFHQ quad ``(4, 2)`` in photo pixels: top-left, bottom-left, bottom-right, top-right."""
    e2e, e2m = face.eye_to_eye, face.eye_to_mouth
    x = e2e - np.flipud(e2m) * [-1.0, 1.0]
    norm = np.hypot(*x)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError(f"degenerate face landmarks (eye-to-eye {e2e}, eye-to-mouth {e2m}); cannot align")
    x = x / norm * max(np.hypot(*e2e) * 2.0, np.hypot(*e2m) * 1.8)
    y = np.flipud(x) * [-1.0, 1.0]
    c = face.eye_center + e2m * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_to_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """3x3 matrix mapping crop pixels (``size x size``) to photo pixels for an FFHQ ``quad``.

    The crop's outer corner ``(-0.5, -0.5)`` maps to ``quad[0]``, ``(size - 0.5, -0.5)`` to
    ``quad[3]`` and ``(-0.5, size - 0.5)`` to ``quad[1]``.
    """
    ex = (quad[3] - quad[0]) / size  # photo step per crop pixel along x
    ey = (quad[1] - quad[0]) / size
    t = quad[0] + 0.5 * (ex + ey)  # centre of crop pixel (0, 0)
    return np.array([[ex[0], ey[0], t[0]], [ex[1], ey[1], t[1]], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class Aligned:
    """An FFHQ-aligned face crop and the exact transform back to the photo."""

    crop: np.ndarray  # (size, size, 3) uint8 RGB
    quad: np.ndarray  # (4, 2) photo coords of the crop's corners: TL, BL, BR, TR
    matrix: np.ndarray  # (3, 3) crop pixel (x, y, 1) -> photo pixel
    photo_shape: tuple[int, int]  # (height, width) of the photo it came from
    face: Face

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop pixel coordinates to photo pixel coordinates."""
        return apply_affine(self.matrix, points)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` photo pixel coordinates to crop pixel coordinates."""
        return apply_affine(np.linalg.inv(self.matrix), points)


def _reflect_pad_blend(img: np.ndarray, pad: np.ndarray, qsize: float) -> np.ndarray:
    """FFHQ padding: reflect, then blur and fade to the median colour towards the outer edge.

    Returns float32 (the caller rounds once, after the final resampling)."""
    left, top, right, bottom = (int(p) for p in pad)
    padded = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_REFLECT_101).astype(np.float32)
    h, w = padded.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    mask_x = 1.0 - np.minimum(xs / max(left, 1), (w - 1 - xs) / max(right, 1))
    mask_y = 1.0 - np.minimum(ys / max(top, 1), (h - 1 - ys) / max(bottom, 1))
    mask = np.maximum(mask_x[None, :], mask_y)[:, :, None]  # (h, w, 1), > 0 inside the padding
    sigma = qsize * 0.02
    if sigma > 0.3:
        blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
        padded += (blurred - padded) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    step = max(1, int(math.sqrt(h * w / 65536)))  # median of a ~256x256 subsample
    median = np.median(padded[::step, ::step].reshape(-1, 3), axis=0)
    padded += (median - padded) * np.clip(mask, 0.0, 1.0)
    return padded  # float32; rounded once, after the warp


def align_face(image: np.ndarray, face: Face, size: int = 256, *, pad: bool = True) -> Aligned:
    """Cut the FFHQ-aligned ``size x size`` crop of ``face`` out of ``image`` (uint8 RGB).

    ``pad=False`` skips FFHQ's blurred reflect padding (areas outside the photo are then mirrored
    without blur). The returned :class:`Aligned` maps crop pixels back to the photo exactly.
    """
    image = check_rgb(image)
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise ValueError(f"size must be an integer of at least 8, got {size!r}")
    size = int(size)
    h, w = image.shape[:2]
    quad = ffhq_quad(face)
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    matrix = quad_to_matrix(quad, size)

    # Shrink: box-filter by an integer factor so the final warp scales by less than ~4x.
    shrink = max(1, int(math.floor(qsize / size * 0.5)))
    q_lo, q_hi = quad.min(axis=0), quad.max(axis=0)
    border = max(int(np.rint(qsize / shrink * 0.1)), 3)  # in working (shrunk) pixels
    x0 = max(math.floor(q_lo[0]) - border * shrink, 0)
    y0 = max(math.floor(q_lo[1]) - border * shrink, 0)
    x1 = min(math.ceil(q_hi[0]) + border * shrink, w)
    y1 = min(math.ceil(q_hi[1]) + border * shrink, h)
    x1 = x0 + max((x1 - x0) // shrink, 1) * shrink
    y1 = y0 + max((y1 - y0) // shrink, 1) * shrink
    work = image[y0 : min(y1, h), x0 : min(x1, w)]
    if shrink > 1:
        ww, wh = work.shape[1] // shrink, work.shape[0] // shrink
        if ww < 1 or wh < 1:  # quad entirely outside the photo: fall back to no shrink
            shrink, work = 1, image[y0:y1, x0:x1]
        else:
            work = cv2.resize(work[: wh * shrink, : ww * shrink], (ww, wh), interpolation=cv2.INTER_AREA)
    if work.size == 0:
        raise AlignError(f"the face's FFHQ quad {quad.round(1).tolist()} lies outside the {w}x{h} photo; cannot align")
    # working pixel i <-> photo pixel x0 + shrink * i + (shrink - 1) / 2
    origin = np.array([x0, y0], dtype=np.float64) + (shrink - 1) / 2.0

    # Pad where the quad leaves the photo (FFHQ: reflect + blur + fade to median).
    quad_w = (quad - origin) / shrink
    qsize_w = qsize / shrink
    wl, wt = np.floor(quad_w.min(axis=0)).astype(int)
    wr, wb = np.ceil(quad_w.max(axis=0)).astype(int)
    work_h, work_w = work.shape[:2]
    pads = np.array(  # left, top, right, bottom
        [max(-wl + border, 0), max(-wt + border, 0), max(wr - work_w + border, 0), max(wb - work_h + border, 0)]
    )
    if pad and pads.max() > border - 4:
        pads = np.maximum(pads, int(np.rint(qsize_w * 0.3)))
        work = _reflect_pad_blend(work, pads, qsize_w)
        origin = origin - pads[:2] * shrink

    # Warp: supersample by an integer factor, then box-filter down to size x size. Both steps run
    # in float32 when there are two of them, so the result is rounded to uint8 only once.
    ss = max(1, math.ceil(qsize_w / size))
    if ss > 1 and work.dtype != np.float32:
        work = work.astype(np.float32)
    dst_to_crop = np.array([[1.0 / ss, 0.0, 0.5 / ss - 0.5], [0.0, 1.0 / ss, 0.5 / ss - 0.5], [0.0, 0.0, 1.0]])
    photo_to_work = np.array([[1.0 / shrink, 0.0, -origin[0] / shrink], [0.0, 1.0 / shrink, -origin[1] / shrink], [0.0, 0.0, 1.0]])
    dst_to_work = photo_to_work @ matrix @ dst_to_crop
    crop = cv2.warpAffine(
        work,
        dst_to_work[:2],
        (size * ss, size * ss),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    if ss > 1:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    if crop.dtype != np.uint8:
        crop = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
    return Aligned(crop=np.ascontiguousarray(crop), quad=quad, matrix=matrix, photo_shape=(h, w), face=face)


def feather_mask(size: int, feather: float) -> np.ndarray:
    """``(size, size)`` float32 mask: 1 inside, easing to 0 over ``feather * size`` at each edge."""
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather must be in [0, 0.5] (a fraction of the crop side), got {feather}")
    if feather == 0.0:
        return np.ones((size, size), np.float32)
    dist = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32) + 0.5
    ramp = np.clip(dist / (feather * size), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no visible seam at either end
    return np.minimum(ramp[:, None], ramp[None, :])


# The face region of an FFHQ-aligned crop, as fractions of its side: an upright ellipse around the face and
# hair (the crop puts the eyes at about 0.4 of the height and the mouth at about 0.6), well inside the crop so
# that its feathered edge never reaches the crop's border.
FACE_ELLIPSE = (0.5, 0.5, 0.40, 0.44)  # centre x, centre y, half width, half height
PasteShape = Literal["face", "square"]
PASTE_SHAPES: tuple[str, ...] = ("face", "square")


def face_mask(size: int, feather: float = 0.1) -> np.ndarray:
    """``(size, size)`` float32 blend weight over an aligned crop: 1 on the face (:data:`FACE_ELLIPSE`), easing
    to 0 over ``feather`` of the side towards the ellipse's edge, and 0 outside it (so along the whole crop
    border): a cartoon pasted back with it shows no square seam."""
    if not 0.0 < feather <= 0.5:
        raise ValueError(f"feather must be in (0, 0.5] (a fraction of the crop side), got {feather}")
    cx, cy, ax, ay = FACE_ELLIPSE
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    r = np.sqrt(((c[None, :] - cx) / ax) ** 2 + ((c[:, None] - cy) / ay) ** 2)  # 1 on the ellipse
    ramp = np.clip((1.0 - r) * min(ax, ay) / feather, 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep: no visible edge at either end


def paste_back(
    photo: np.ndarray,
    stylized: np.ndarray,
    aligned: Aligned,
    feather: float = 0.1,
    mask: np.ndarray | None = None,
    shape: PasteShape = "face",
) -> np.ndarray:
    """Blend a (stylized) face crop back into ``photo`` where ``aligned`` was cut out.

    ``stylized`` is any square ``(s, s, 3)`` uint8 image standing for the aligned crop (its size
    may differ from the crop's). The blend weight is, with ``shape="face"`` (the default), a soft
    ellipse around the face (:func:`face_mask`) whose edge eases over ``feather`` of the side, so the
    crop's square never shows; with ``shape="square"``, the whole crop feathered over ``feather`` at its
    edges. Either is multiplied by the optional ``mask`` (square float array in [0, 1], e.g. a
    face-parsing mask). Returns a new array; ``photo`` is not modified.
    """
    photo = check_rgb(photo, "photo")
    stylized = check_rgb(stylized, "stylized")
    if photo.shape[:2] != tuple(aligned.photo_shape):
        raise ValueError(
            f"photo is {photo.shape[1]}x{photo.shape[0]} but the face was aligned on a "
            f"{aligned.photo_shape[1]}x{aligned.photo_shape[0]} photo; paste back into the same photo"
        )
    if stylized.shape[0] != stylized.shape[1]:
        raise ValueError(f"stylized must be square, got {stylized.shape[1]}x{stylized.shape[0]}")
    h, w = photo.shape[:2]
    if shape not in PASTE_SHAPES:
        raise ValueError(f"shape must be one of {', '.join(PASTE_SHAPES)}, got {shape!r}")
    weight = face_mask(stylized.shape[0], feather) if shape == "face" else feather_mask(stylized.shape[0], feather)
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
            raise ValueError(f"mask must be a square 2-D array, got shape {mask.shape}")
        if mask.shape != weight.shape:
            mask = cv2.resize(mask, weight.shape[::-1], interpolation=cv2.INTER_LINEAR)
        weight = weight * np.clip(mask, 0.0, 1.0)

    # Shrink the stylized face first when it lands much smaller in the photo (avoids aliasing).
    qsize = float(np.hypot(*(aligned.quad[3] - aligned.quad[0])))
    k = int(stylized.shape[0] // max(qsize, 1.0))
    if k >= 2:
        side = max(1, stylized.shape[0] // k)
        stylized = cv2.resize(stylized, (side, side), interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, (side, side), interpolation=cv2.INTER_AREA)
    s = stylized.shape[0]
    scale = aligned.size / s
    styl_to_crop = np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5], [0.0, 0.0, 1.0]])

    lo = np.floor(aligned.quad.min(axis=0)).astype(int) - 1
    hi = np.ceil(aligned.quad.max(axis=0)).astype(int) + 2
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w), min(hi[1], h)
    out = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    to_region = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ aligned.matrix @ styl_to_crop
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(stylized, to_region[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(weight, to_region[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    region = out[y0:y1, x0:x1].astype(np.float32)
    region += (warped.astype(np.float32) - region) * alpha[:, :, None]
    out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out


def encoder_input(photo: np.ndarray, face: Face, size: int = ALIGNED_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """What an encoder of input ``size`` gets for ``face``, and the way back to the photo.

    Returns the FFHQ crop as float32 ``[3, size, size]`` in [-1, 1] and the float32 ``[3, 3]`` transform from
    pixels of the 256 px crop (``contracts.ALIGNED_SIZE``, whatever ``size`` is) to photo pixels: the
    ``transform`` tensor of the served models, which :func:`aligned_from_transform` turns back into an
    :class:`Aligned` for :func:`paste_back`. The served preprocess, the in-process pipeline and the video
    client all cut faces with this one function.
    """
    aligned = align_face(photo, face, size=size)
    crop = aligned.crop.astype(np.float32).transpose(2, 0, 1) / np.float32(127.5) - np.float32(1.0)
    a = size / ALIGNED_SIZE  # crop_size px = a * crop_256 px + (a - 1) / 2 (pixel centres)
    to_sized = np.array([[a, 0.0, 0.5 * a - 0.5], [0.0, a, 0.5 * a - 0.5], [0.0, 0.0, 1.0]])
    return crop, (aligned.matrix @ to_sized).astype(np.float32)


def aligned_from_transform(transform: np.ndarray, photo_shape: tuple[int, int]) -> Aligned:
    """The :class:`Aligned` (without its crop pixels) of a 256 px crop-to-photo ``transform`` (see :func:`encoder_input`),
    for :func:`paste_back`. Raises ValueError for a transform that is not finite and invertible."""
    m = np.asarray(transform, np.float64)
    if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m[:2, :2])) < 1e-9:
        raise ValueError("transform must be a finite, invertible 3x3 crop-to-photo matrix")
    s = ALIGNED_SIZE
    corners = np.array([[-0.5, -0.5, 1.0], [-0.5, s - 0.5, 1.0], [s - 0.5, s - 0.5, 1.0], [s - 0.5, -0.5, 1.0]])
    quad = (m @ corners.T).T[:, :2]
    return Aligned(crop=np.zeros((s, s, 3), np.uint8), quad=quad, matrix=m, photo_shape=tuple(photo_shape[:2]), face=None)  # type: ignore[arg-type]
