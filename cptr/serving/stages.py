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

from cptr.align import Face, aligned_from_transform, detect_landmarks, encoder_input, is_grayscale, load_image, paste_back
from cptr.contracts import ALIGNED_SIZE, MAX_FACES_PER_PHOTO, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MIN_FACE_SIZE, TensorSpec
from cptr.imaging import LUMA, array_to_uint8
from cptr.models.latents import mix_w_plus_np
from cptr.serving.errors import BAD_REQUEST, IMAGE_TOO_LARGE, TOO_MANY_FACES, RequestError

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


def decode_photo(data: bytes) -> np.ndarray:
    """Photo bytes -> uint8 ``[H, W, 3]``, refusing more than ``MAX_IMAGE_BYTES`` (image_too_large) and the errors of
    :func:`cptr.align.load_image` (bad image, too many pixels)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise RequestError(
            IMAGE_TOO_LARGE,
            f"the photo is {len(data) / 2**20:.1f} MiB, more than the limit of {MAX_IMAGE_BYTES / 2**20:.0f} MiB; send a smaller JPEG",
        )
    return load_image(data, max_pixels=MAX_IMAGE_PIXELS)


def find_faces(photo: np.ndarray, largest: bool = False, max_faces: int = MAX_FACES_PER_PHOTO) -> list[Face]:
    """The faces to cartoonize in ``photo``, largest first: the largest one, or every face above ``MIN_FACE_SIZE``.

    More than ``max_faces`` such faces is refused (too_many_faces) rather than cut at an arbitrary face; errors of
    :func:`cptr.align.detect_landmarks` otherwise (no face, face too small).
    """
    if largest:
        return detect_landmarks(photo)[:1]
    faces = detect_landmarks(photo, policy="all", max_faces=max_faces + 1, min_face_size=MIN_FACE_SIZE)
    if len(faces) > max_faces:
        h, w = photo.shape[:2]
        raise RequestError(
            TOO_MANY_FACES,
            f"the {w}x{h} photo has more than {max_faces} faces of at least {MIN_FACE_SIZE:.0f} px; the limit is {max_faces} "
            "faces per photo: crop the photo to fewer people, or cartoonize only the largest face (largest=1, --largest)",
        )
    return faces


def decode_and_align_faces(
    data: bytes, size: int = ALIGNED_SIZE, *, largest: bool = False, max_faces: int = MAX_FACES_PER_PHOTO
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo bytes -> (photo uint8 [H, W, 3], aligned float32 [F, 3, size, size] in [-1, 1], transforms float32 [F, 3, 3]).

    One row per face of :func:`find_faces` (largest first); each transform maps pixels of the 256 px FFHQ crop
    (``ALIGNED_SIZE``, whatever ``size`` is) to photo pixels (:func:`cptr.align.encoder_input`).
    """
    photo = decode_photo(data)
    cut = [encoder_input(photo, face, size) for face in find_faces(photo, largest, max_faces)]
    return photo, np.stack([c for c, _ in cut]), np.stack([m for _, m in cut])


def decode_and_align(data: bytes, size: int = ALIGNED_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The largest face only: (photo uint8 [H, W, 3], aligned float32 [3, size, size], transform float32 [3, 3])
    (see :func:`decode_and_align_faces`)."""
    photo, crops, transforms = decode_and_align_faces(data, size, largest=True)
    return photo, crops[0], transforms[0]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """One generator image ``[3, S, S]`` in [-1, 1] -> uint8 ``[S, S, 3]`` (same rounding as cptr.imaging.to_uint8)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise RequestError(BAD_REQUEST, f"image must have shape [3, H, W], got {list(image.shape)}")
    if not 1 <= min(image.shape[1:]) <= max(image.shape[1:]) <= MAX_RESULT_SIDE:
        raise RequestError(BAD_REQUEST, f"image must be 1 to {MAX_RESULT_SIDE} pixels per side, got {image.shape[2]}x{image.shape[1]}")
    return array_to_uint8(image[None])[0]


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] array (fast zlib level: this runs per request)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def paste_into_photo(photo: np.ndarray, stylized: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Blend ``stylized`` back into ``photo`` where the aligned crop with ``transform`` was cut out."""
    try:
        aligned = aligned_from_transform(transform, photo.shape[:2])
    except ValueError as e:
        raise RequestError(BAD_REQUEST, str(e)) from None
    return paste_back(photo, stylized, aligned)


def composite(photo: np.ndarray, cartoons: Sequence[np.ndarray], transforms: Sequence[np.ndarray]) -> np.ndarray:
    """``photo`` with every cartoon (uint8 ``[S, S, 3]``) pasted back where its crop was cut out; the smaller faces
    first, so a larger (nearer) face covers a smaller one where they overlap."""
    if len(cartoons) != len(transforms):
        raise RequestError(BAD_REQUEST, f"{len(cartoons)} cartoons but {len(transforms)} transforms")
    out = photo
    sides = [abs(float(np.linalg.det(np.asarray(m, np.float64)[:2, :2]))) for m in transforms]
    for i in sorted(range(len(cartoons)), key=lambda i: sides[i]):
        out = paste_into_photo(out, cartoons[i], transforms[i])
    return out


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> the same image in grey (ITU-R 601 luma, as Pillow's ``convert("L")``), still 3 channels."""
    luma = rgb[..., 0] * np.float32(LUMA[0]) + rgb[..., 1] * np.float32(LUMA[1]) + rgb[..., 2] * np.float32(LUMA[2])
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def photo_rows(photo_bytes: np.ndarray) -> list[tuple[int, int]]:
    """The ``(start, stop)`` rows of each photo in a batch of face rows (:data:`cptr.contracts` FACE_ROWS): a photo's
    bytes are in the row of its first face, empty bytes in its other faces' rows."""
    items = [bytes(b) for b in np.asarray(photo_bytes, dtype=object).reshape(-1)]
    if items and not items[0]:
        raise RequestError(BAD_REQUEST, "the first row of image_bytes is empty: each photo's bytes go in the row of its first face")
    starts = [i for i, b in enumerate(items) if b]
    return list(zip(starts, [*starts[1:], len(items)]))


def render_faces(
    images: np.ndarray, photo_bytes: np.ndarray | None = None, transforms: np.ndarray | None = None, paste: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Postprocess a batch of face rows (FACE_ROWS): each face's cartoon as PNG, and each photo's composite (every one
    of its faces pasted back, where its first row asks for ``paste``) in the row of its first face.

    Returns ``(output_bytes [F, 1], composite [F, 1])``, object arrays of PNG bytes (empty where nothing is due).
    Generator images without photos (random faces) get their PNGs and empty composites. A photo stored in grey gets
    grey cartoons: the generator's colours would be invented.
    """
    n = len(images)
    out = np.empty((n, 1), dtype=np.object_)
    comp = np.full((n, 1), b"", dtype=np.object_)
    rgb = [to_uint8(im) for im in images]
    groups = photo_rows(photo_bytes) if photo_bytes is not None else []
    if not groups and paste is not None and paste.any():
        raise RequestError(BAD_REQUEST, "paste_back=1 needs the photo (image_bytes) and its transforms")
    rows = np.asarray(photo_bytes, dtype=object).reshape(-1) if groups else None
    for start, stop in groups:
        data = bytes(rows[start])  # type: ignore[index]
        if is_grayscale(data):
            rgb[start:stop] = [grey(x) for x in rgb[start:stop]]
        if paste is not None and paste.reshape(-1)[start]:
            if transforms is None:
                raise RequestError(BAD_REQUEST, "paste_back=1 needs the photo (image_bytes) and its transforms")
            comp[start, 0] = encode_png(composite(decode_photo(data), rgb[start:stop], transforms[start:stop]))
    for i, x in enumerate(rgb):
        out[i, 0] = encode_png(x)
    return out, comp
