"""The pretrained (real-face) model a fine-tuning run starts from: generator and discriminator."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from cptr.models.checkpoints import CheckpointError, load_generator, load_torch_file
from cptr.models.stylegan2 import Discriminator, Generator


def discriminator_from_state_dict(sd: dict[str, torch.Tensor], size: int) -> Discriminator:
    """Build a :class:`Discriminator` whose widths match a rosinality ``d`` state dict; load it strictly."""
    try:
        channels = {size: int(sd["convs.0.0.weight"].shape[0])}
        n_blocks = sum(1 for k in sd if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", k))
        for k in range(1, n_blocks + 1):
            channels[size // 2**k] = int(sd[f"convs.{k}.conv2.1.weight"].shape[0])
    except KeyError as e:
        raise ValueError(f"not a StyleGAN2 discriminator state dict: missing {e}") from None
    if min(channels) != 4:
        raise ValueError(f"the discriminator has {n_blocks} residual blocks; a {size} px one needs {int(size).bit_length() - 3}")
    d = Discriminator(size, channels=channels)
    d.load_state_dict(sd, strict=True)
    return d


def load_source(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[Generator, Discriminator | None]:
    """The source generator (frozen, eval) and, when the file has one, its discriminator.

    A rosinality training checkpoint carries ``d``; a bare ``g_ema`` file or an NVlabs pickle does not,
    and then the caller starts from a random discriminator.
    """
    p = Path(path)
    g = load_generator(p, device=device)
    d = None
    if p.suffix.lower() != ".pkl":
        ckpt = load_torch_file(p)
        if isinstance(ckpt, dict) and isinstance(ckpt.get("d"), dict):
            try:
                d = discriminator_from_state_dict(ckpt["d"], g.size)
            except (ValueError, RuntimeError) as e:
                raise CheckpointError(
                    p, f"its discriminator 'd' does not fit the {g.size} px generator: {str(e).splitlines()[0]}"
                ) from None
    return g, (d.to(device) if d is not None else None)
