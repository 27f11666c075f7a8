"""Synthesis for the trainers: per-sample noise and a DistributedDataParallel front.

The synthesis walk itself is :meth:`cptr.models.Generator.synthesis`, which also returns, for each
resolution, the RGB skip image and the feature map after the block's second conv. The structure
loss reads these intermediates: ``rgb`` uses the skip images (the ToRGB outputs summed up to that
resolution, as in the paper), ``features`` the feature maps (as in the released code).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cptr.models.stylegan2 import Generator, SynthesisOutputs
from cptr.training.freeze import mix_latents

__all__ = ["SynthesisNetwork", "SynthesisOutputs", "make_noise", "synthesize"]


def make_noise(
    g: Generator, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> list[torch.Tensor]:
    """Per-sample noise maps for every synthesis layer: ``[batch, 1, res, res]`` each."""
    return g.make_noise(batch, generator, device)


def synthesize(
    g: Generator,
    w_plus: torch.Tensor,
    noise: Sequence[torch.Tensor | None] | None = None,
    max_resolution: int | None = None,
) -> SynthesisOutputs:
    """``g.synthesis(w_plus, noise, max_resolution)``: the image and the per-resolution intermediates."""
    return g.synthesis(w_plus, noise, max_resolution)


class SynthesisNetwork(nn.Module):
    """``nn.Module`` front for :func:`synthesize` so DistributedDataParallel can wrap it.

    Its parameters are the generator's (``state_dict`` keys gain a ``g.`` prefix; save ``.g``).
    ``forward`` returns a dict (``image``, ``rgb``, ``features``) that DDP can traverse.
    """

    def __init__(self, g: Generator):
        super().__init__()
        self.g = g

    def forward(
        self,
        w_plus: torch.Tensor | None,
        noise: Sequence[torch.Tensor | None] | None = None,
        max_resolution: int | None = None,
        styles: tuple[torch.Tensor, torch.Tensor | None, int | None] | None = None,
    ) -> dict:
        """``styles=(z1, z2, crossover)`` instead of ``w_plus`` runs the mapping network first (so it
        trains, from scratch); the W+ it made is returned as ``w_plus``."""
        if w_plus is None:
            if styles is None:
                raise ValueError("give w_plus or styles=(z1, z2, crossover)")
            w_plus = mix_latents(self.g.style, self.g.n_latent, *styles)
        o = synthesize(self.g, w_plus, noise, max_resolution)
        return {"image": o.image, "rgb": o.rgb, "features": o.features, "w_plus": w_plus}
