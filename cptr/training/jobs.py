"""What the mapper and encoder jobs share: the generator they train against, the device, real images.

A job's set-up error is a :class:`JobError`; its message says what to pass instead, and the
``cptr-train`` commands print it as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cptr.models.checkpoints import CheckpointError, load_generator
from cptr.styles import StyleError, get_style, load_style_generators
from cptr.training.data import DatasetError, ImageFolderDataset


class JobError(ValueError):
    """A training job cannot start as asked (a missing or conflicting option, an unreadable file)."""


def pick_device(name: str) -> str:
    """``'auto'`` -> ``'cuda'`` when available, else ``'cpu'``; anything else unchanged."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_source_generator(style: str | None, generator: Path | None, device: str) -> tuple[Any, Any]:
    """The generator a mapper/encoder trains against, ``(generator, style info or None)``: the
    checkpoint ``generator`` or the registered ``style``'s source (exactly one of them)."""

    if (style is None) == (generator is None):
        raise JobError("pass exactly one of --style NAME and --generator PATH")
    if generator is not None:
        try:
            return load_generator(generator, device=device), None
        except CheckpointError as e:
            raise JobError(str(e)) from None

    try:
        info = get_style(style)
        source, _ = load_style_generators(style, device=device)
    except StyleError as e:
        raise JobError(str(e)) from None
    return source, info


def open_image_folder(root: Path, size: int) -> Any:
    """An :class:`~cptr.training.data.ImageFolderDataset` of ``root`` at ``size`` px (a :class:`JobError` if unreadable)."""

    try:
        return ImageFolderDataset(root, size)
    except DatasetError as e:
        raise JobError(str(e)) from None


def endless_batches(root: Path, size: int, batch: int, seed: int) -> Iterator[torch.Tensor]:
    """Random batches [batch, 3, size, size] of the images in ``root``, forever (seeded). The folder
    is opened at once, so an unreadable one fails before training starts."""
    data = open_image_folder(root, size)

    def batches() -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        while True:
            idx = torch.randint(0, len(data), (batch,), generator=gen)
            yield torch.stack([data[int(i)] for i in idx])

    return batches()
