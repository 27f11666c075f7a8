"""Decode untrusted photo bytes into an 8-bit RGB array, safely."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImageError, ImageTooLargeError

#: Default pixel budget of :func:`load_image` (40 megapixels, e.g. 7300 x 5470).
DEFAULT_MAX_PIXELS = 40_000_000

#: Formats :func:`load_image` decodes. Others (EPS, PSD, ...) are refused: less decoder surface.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG covers MPO


def load_image(
    source: bytes | bytearray | memoryview | str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    formats: tuple[str, ...] = SUPPORTED_FORMATS,
) -> np.ndarray:
    """Decode an image file (bytes or a path) into a ``(H, W, 3)`` uint8 RGB array.

    - EXIF orientation is applied, so the array is upright as a viewer shows it.
    - Grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB; 16-bit values are
      scaled (``v / 257``), not clipped. Transparent images are composited over white.
    - Images with more than ``max_pixels`` pixels are refused with :class:`ImageTooLargeError`
      before any pixel is decoded. Pillow's own decompression-bomb limit
      (``PIL.Image.MAX_IMAGE_PIXELS``) also applies and raises the same error.
    - Empty, truncated, corrupted or non-image input raises :class:`BadImageError`.
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if isinstance(source, (str, os.PathLike)):
        data = Path(source).read_bytes()
        where = f"the contents of file {os.fspath(source)!r}"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        where = "the uploaded bytes"
    else:
        raise TypeError(f"load_image expects bytes or a path, got {type(source).__name__}")
    if not data:
        raise BadImageError(f"{where} are empty (0 bytes); send the content of a JPEG or PNG photo")

    buf = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; treat it as a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(buf, formats=list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(
            f"{where} declare too many pixels for Pillow's decompression-bomb guard ({e}); "
            f"send a photo below {min(max_pixels, Image.MAX_IMAGE_PIXELS) / 1e6:.0f} megapixels"
        ) from None
    except Exception as e:  # noqa: BLE001 - any parser failure means "not a usable image"
        raise BadImageError(
            f"{where} ({len(data)} bytes) are not an image in a supported format "
            f"({', '.join(formats)}){_cause(e, buf, where)}; send a JPEG or PNG photo"
        ) from None

    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadImageError(f"{where} declare an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{where} declare a {width}x{height} image ({width * height / 1e6:.1f} megapixels), "
            f"more than the limit of {max_pixels / 1e6:.1f} megapixels; downscale the photo "
            f"(a face needs far less) or raise max_pixels"
        )

    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # no copy when upright already
        return _to_rgb8(image)
    except (Image.DecompressionBombError, MemoryError):
        raise ImageTooLargeError(f"{where} could not be decoded within memory limits") from None
    except BadImageError:
        raise
    except Exception as e:  # noqa: BLE001
        raise BadImageError(
            f"{where} ({len(data)} bytes, {image.format} {width}x{height}) are corrupted or "
            f"truncated{_cause(e, buf, where)}; re-export or re-upload the photo"
        ) from None


GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def is_grayscale(data: bytes) -> bool:
    """Whether an image file stores one grey channel (Pillow modes :data:`GRAYSCALE_MODES`), read from its header
    only; False for anything Pillow cannot identify."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.mode in GRAYSCALE_MODES
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def _cause(e: Exception, buf: io.BytesIO, where: str) -> str:
    """``: <Pillow's reason>`` naming the input as ``where`` (Pillow names it by its buffer's repr), or
    nothing when Pillow only says it recognised no format (the message says that already)."""
    if isinstance(e, UnidentifiedImageError):
        return ""
    return f": {type(e).__name__}: {str(e).replace(repr(buf), where)}"


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to a contiguous ``(H, W, 3)`` uint8 RGB array."""
    mode = image.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = np.asarray(image).astype(np.float64)
        if mode == "F" and gray.size and np.nanmax(gray) <= 1.0:
            gray = gray * 255.0  # float images in [0, 1]
        elif mode.startswith("I;16") or (mode == "I" and gray.size and gray.max() > 255):
            gray = gray / 257.0  # 16-bit range -> 8-bit range
        gray8 = np.clip(np.rint(np.nan_to_num(gray)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray8[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.ascontiguousarray(np.asarray(Image.alpha_composite(background, rgba).convert("RGB")))
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    raise BadImageError(f"unsupported image mode {mode!r}; convert the photo to 8-bit RGB (JPEG or PNG)")
