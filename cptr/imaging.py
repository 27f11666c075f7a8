"""Conversions between generator tensors and images, and sample grids."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cptr.io import atomic_write_bytes

if TYPE_CHECKING:  # torch is imported where tensors are converted: saving a picture does not need it
    import torch

# Luma weights of R, G, B (ITU-R BT.601, as Pillow's convert("L")): the grey of a greyscale photo, and sharpness.
LUMA = (0.299, 0.587, 0.114)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Map generator output [B, 3, H, W] in [-1, 1] to uint8 [B, H, W, 3]."""
    import torch

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def array_to_uint8(images: np.ndarray) -> np.ndarray:
    """:func:`to_uint8` for NumPy: float images [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3] (the same rounding)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {images.shape}")
    x = np.rint((np.clip(images.astype(np.float32), -1.0, 1.0) + 1.0) * np.float32(127.5))
    return x.astype(np.uint8).transpose(0, 2, 3, 1)


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """Map uint8 [B, H, W, 3] (or one [H, W, 3]) to float [B, 3, H, W] in [-1, 1]."""
    import torch

    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [B, H, W, 3], got {arr.dtype} {arr.shape}")
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


def grid(images: np.ndarray | Sequence[np.ndarray], cols: int | None = None, pad: int = 2) -> Image.Image:
    """Tile uint8 images [N, H, W, 3] into one picture, ``cols`` per row."""
    imgs = np.asarray(images)
    if imgs.ndim != 4:
        raise ValueError(f"expected [N, H, W, 3] images, got {imgs.shape}")
    n, h, w, c = imgs.shape
    cols = cols or min(n, 8)
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = im
    return Image.fromarray(canvas)


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """PNG bytes of a PIL image or a uint8 [H, W, 3] array."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def image_format(path: str | os.PathLike) -> str:
    """Pillow format for a picture file, from its suffix; ``ValueError`` for any other suffix."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in IMAGE_FORMATS:
        what = f"suffix '{suffix}'" if suffix else "no suffix"
        raise ValueError(f"cannot write a picture to '{os.fspath(path)}' ({what}); end the name with {', '.join(IMAGE_FORMATS)}")
    return IMAGE_FORMATS[suffix]


def save_image(image: Image.Image | np.ndarray, path: str | os.PathLike) -> None:
    """Save a picture atomically in the format of its suffix (see :func:`image_format`)."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    fmt = image_format(path)
    if fmt == "JPEG":
        im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())
