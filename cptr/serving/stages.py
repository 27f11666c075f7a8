"""What the Python-backend models compute, in plain NumPy (no Triton import, testable in-process).

Random generation from seeds is defined here, once:

- ``z = numpy.random.default_rng(seed).normal(size=style_dim)`` cast to float32, for every seed
  ``0 <= seed < 2**63`` (the same seed gives the same face on every machine and NumPy version
  that keeps ``PCG64``'s stream, i.e. every NumPy >= 1.17);
- style mixing with ``mix = [seed2, crossover]``: ``W+[i] = mapping(z(seed))`` for ``i < crossover``
  and ``mapping(z(seed2))`` after; ``crossover`` 0 or ``>= n_latent`` means no mixing (the one rule,
  :mod:`cptr.models.latents`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from cptr.align import Aligned, align_face, detect_landmarks, is_grayscale, load_image, paste_back
from cptr.contracts import ALIGNED_SIZE, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, TensorSpec
from cptr.models.latents import mix_w_plus_np
from cptr.serving.errors import BAD_REQUEST, IMAGE_TOO_LARGE, RequestError

MAX_SEED = 2**63 - 1
MAX_RESULT_SIDE = 4096  # postprocess refuses bigger images: a generator never makes them


def check_tensor(x: np.ndarray, spec: TensorSpec, batch_max: int, *, finite: bool = True) -> np.ndarray:
    """Check a batched input against its contract: dtype, shape ``[B, *dims]``, ``1 <= B <= batch_max``, finiteness."""
    if not isinstance(x, np.ndarray):
        raise RequestError(BAD_REQUEST, f"input '{spec.name}' is not an array")
    want = spec.numpy_dtype
    if x.dtype != want and not (want == np.dtype(object) and x.dtype.kind in "OSU"):
        raise RequestError(BAD_REQUEST, f"input '{spec.name}' must be {spec.dtype} ({want}), got {x.dtype}")
    if x.ndim != len(spec.dims) + 1 or any(d != -1 and d != s for d, s in zip(spec.dims, x.shape[1:])):
        dims = ", ".join(str(d) for d in spec.dims)
        raise RequestError(BAD_REQUEST, f"input '{spec.name}' must have shape [batch, {dims}], got {list(x.shape)}")
    if not 1 <= x.shape[0] <= batch_max:
        raise RequestError(BAD_REQUEST, f"input '{spec.name}' has batch size {x.shape[0]}; send 1 to {batch_max} items per request")
    if finite and x.dtype.kind == "f" and not np.isfinite(x).all():
        raise RequestError(BAD_REQUEST, f"input '{spec.name}' contains NaN or infinite values")
    return x


def check_seeds(seeds: np.ndarray, what: str = "seed") -> np.ndarray:
    """Seeds must be integers in [0, 2**63)."""
    if seeds.dtype.kind not in "iu":
        raise RequestError(BAD_REQUEST, f"{what} must be integers, got {seeds.dtype}")
    if (seeds < 0).any():
        raise RequestError(BAD_REQUEST, f"{what} must be in [0, {MAX_SEED}], got {int(seeds.min())}")
    return seeds


def seed_latents(seeds: Sequence[int] | np.ndarray, style_dim: int) -> np.ndarray:
    """z ``[B, style_dim]`` float32 for each seed: ``default_rng(seed).normal(size=style_dim)``."""
    flat = check_seeds(np.asarray(seeds).reshape(-1))
    if flat.size == 0:
        return np.zeros((0, style_dim), np.float32)
    return np.stack([np.random.default_rng(int(s)).normal(size=style_dim) for s in flat]).astype(np.float32)


def check_mix(mix: np.ndarray) -> np.ndarray:
    """``mix [B, 2]``: ``[seed2, crossover]``, both non-negative."""
    if mix.ndim != 2 or mix.shape[1] != 2:
        raise RequestError(BAD_REQUEST, f"mix must have shape [batch, 2] ([seed2, crossover]), got {list(mix.shape)}")
    check_seeds(mix[:, 0], "mix seed (mix[:, 0])")
    if (mix[:, 1] < 0).any():
        raise RequestError(BAD_REQUEST, f"mix crossover (mix[:, 1]) must be >= 0, got {int(mix[:, 1].min())}")
    return mix


def mix_latents(w: np.ndarray, w_mix: np.ndarray, mix: np.ndarray, n_latent: int) -> np.ndarray:
    """W+ ``[B, n_latent, style_dim]`` by the style-mixing rule of :mod:`cptr.models.latents`:
    ``w`` for entries ``< crossover``, ``w_mix`` after; crossover 0 or ``>= n_latent``: ``w`` everywhere."""
    check_mix(mix)
    if w.shape != w_mix.shape or w.ndim != 2 or w.shape[0] != mix.shape[0]:
        raise RequestError(BAD_REQUEST, f"w {list(w.shape)}, w_mix {list(w_mix.shape)} and mix {list(mix.shape)} do not match")
    return mix_w_plus_np(w, w_mix, mix[:, 1], n_latent)


def decode_and_align(data: bytes, size: int = ALIGNED_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo bytes -> (photo uint8 [H, W, 3], aligned float32 [3, size, size] in [-1, 1], transform float32 [3, 3]).

    ``transform`` maps pixels of the 256 px FFHQ crop (``ALIGNED_SIZE``, whatever ``size`` is) to
    photo pixels. Raises :class:`RequestError` (image_too_large) above ``MAX_IMAGE_BYTES`` and the
    errors of :mod:`cptr.align` (bad image, too many pixels, no face, face too small).
    """

    if len(data) > MAX_IMAGE_BYTES:
        raise RequestError(
            IMAGE_TOO_LARGE,
            f"the photo is {len(data) / 2**20:.1f} MiB, more than the limit of {MAX_IMAGE_BYTES / 2**20:.0f} MiB; send a smaller JPEG",
        )
    photo = load_image(data, max_pixels=MAX_IMAGE_PIXELS)
    face = detect_landmarks(photo)[0]
    aligned = align_face(photo, face, size=size)
    crop = aligned.crop.astype(np.float32).transpose(2, 0, 1) / np.float32(127.5) - np.float32(1.0)
    a = size / ALIGNED_SIZE  # crop_size px = a * crop_256 px + (a - 1) / 2 (pixel centres)
    to_sized = np.array([[a, 0.0, 0.5 * a - 0.5], [0.0, a, 0.5 * a - 0.5], [0.0, 0.0, 1.0]])
    return photo, crop, (aligned.matrix @ to_sized).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """One generator image ``[3, S, S]`` in [-1, 1] -> uint8 ``[S, S, 3]`` (same rounding as cptr.imaging.to_uint8)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise RequestError(BAD_REQUEST, f"image must have shape [3, H, W], got {list(image.shape)}")
    if not 1 <= min(image.shape[1:]) <= max(image.shape[1:]) <= MAX_RESULT_SIDE:
        raise RequestError(BAD_REQUEST, f"image must be 1 to {MAX_RESULT_SIDE} pixels per side, got {image.shape[2]}x{image.shape[1]}")
    x = np.rint((np.clip(image.astype(np.float32), -1.0, 1.0) + 1.0) * np.float32(127.5))
    return x.astype(np.uint8).transpose(1, 2, 0)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] array (fast zlib level: this runs per request)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def paste_into_photo(photo: np.ndarray, stylized: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Blend ``stylized`` back into ``photo`` where the aligned crop with ``transform`` was cut out."""

    m = np.asarray(transform, np.float64)
    if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m[:2, :2])) < 1e-9:
        raise RequestError(BAD_REQUEST, "transform must be a finite, invertible 3x3 crop-to-photo matrix")
    s = ALIGNED_SIZE
    corners = np.array([[-0.5, -0.5, 1.0], [-0.5, s - 0.5, 1.0], [s - 0.5, s - 0.5, 1.0], [s - 0.5, -0.5, 1.0]])
    quad = (m @ corners.T).T[:, :2]
    aligned = Aligned(crop=np.zeros((s, s, 3), np.uint8), quad=quad, matrix=m, photo_shape=photo.shape[:2], face=None)
    return paste_back(photo, stylized, aligned)


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> the same image in grey (ITU-R 601 luma, as Pillow's ``convert("L")``), still 3 channels."""
    luma = rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def render(image: np.ndarray, photo_bytes: bytes | None = None, transform: np.ndarray | None = None, paste_back: bool = False) -> bytes:
    """Postprocess one result: the generator image as PNG, or pasted back into the photo.

    A photo stored in grey (a one-channel file) gets a grey cartoon: the generator's colours would be invented.
    """

    rgb = to_uint8(image)
    if photo_bytes is not None and is_grayscale(photo_bytes):
        rgb = grey(rgb)
    if paste_back:
        if photo_bytes is None or transform is None:
            raise RequestError(BAD_REQUEST, "paste_back=1 needs the photo (image_bytes) and its transform")

        if len(photo_bytes) > MAX_IMAGE_BYTES:
            raise RequestError(IMAGE_TOO_LARGE, f"the photo is larger than {MAX_IMAGE_BYTES / 2**20:.0f} MiB")
        rgb = paste_into_photo(load_image(photo_bytes, max_pixels=MAX_IMAGE_PIXELS), rgb, transform)
    return encode_png(rgb)
