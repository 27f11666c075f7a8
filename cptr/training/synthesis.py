"""Synthesis with intermediate outputs, without touching :class:`cptr.models.Generator`.

:func:`synthesize` walks a generator's layers in exactly the order ``Generator.forward`` does
(constant -> ``conv1`` -> ``to_rgb1`` -> pairs of ``convs`` + ``to_rgbs``) and also returns, for each
resolution, the RGB skip image and the feature map after the block's second conv. Its final image is
bit-identical to ``g([w_plus], input_is_latent=True, noise=noise)`` (tested).

The structure loss reads these intermediates: ``rgb`` uses the skip images (the ToRGB outputs summed
up to that resolution, as in the paper), ``features`` the feature maps (as in the released code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cptr.models.stylegan2 import Generator


@dataclass
class SynthesisOutputs:
    """The image and the per-resolution intermediates of one synthesis pass."""

    image: torch.Tensor  # [B, 3, size, size] (or the skip at max_resolution)
    rgb: dict[int, torch.Tensor] = field(default_factory=dict)  # res -> [B, 3, res, res]
    features: dict[int, torch.Tensor] = field(default_factory=dict)  # res -> [B, C_res, res, res]


def make_noise(g: Generator, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> list[torch.Tensor]:
    """Per-sample noise maps for every synthesis layer: ``[batch, 1, res, res]`` each."""
    device = torch.device(device) if device is not None else g.input.input.device
    return [
        torch.randn(batch, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), generator=generator, device=device)
        for i in range(g.num_layers)
    ]


def synthesize(
    g: Generator,
    w_plus: torch.Tensor,
    noise: Sequence[torch.Tensor | None] | None = None,
    max_resolution: int | None = None,
) -> SynthesisOutputs:
    """Run ``g``'s synthesis on ``w_plus`` [B, n_latent, style_dim] and keep the intermediates.

    ``noise``: one map per layer (``None`` entries draw fresh noise, as ``randomize_noise=True``);
    ``None`` uses the stored noise buffers. ``max_resolution`` stops after that resolution (the
    source pass of the structure loss needs only the low resolutions).
    """
    if w_plus.ndim != 3 or w_plus.shape[1] != g.n_latent or w_plus.shape[2] != g.style_dim:
        raise ValueError(f"w_plus must have shape [B, {g.n_latent}, {g.style_dim}], got {tuple(w_plus.shape)}")
    if noise is None:
        noise = g.const_noise()
    if len(noise) != g.num_layers:
        raise ValueError(f"expected {g.num_layers} noise maps, got {len(noise)}")
    stop = max_resolution or g.size
    latent = w_plus
    out_ = SynthesisOutputs(image=torch.empty(0))

    out = g.conv1(g.input(latent), latent[:, 0], noise=noise[0])
    skip = g.to_rgb1(out, latent[:, 1])
    out_.features[4], out_.rgb[4] = out, skip
    i, res = 1, 4
    for conv_up, conv, noise1, noise2, to_rgb in zip(g.convs[::2], g.convs[1::2], noise[1::2], noise[2::2], g.to_rgbs):
        if res >= stop:
            break
        out = conv_up(out, latent[:, i], noise=noise1)
        out = conv(out, latent[:, i + 1], noise=noise2)
        skip = to_rgb(out, latent[:, i + 2], skip)
        res *= 2
        out_.features[res], out_.rgb[res] = out, skip
        i += 2
    out_.image = skip
    return out_


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
            from cptr.training.freeze import mix_latents

            if styles is None:
                raise ValueError("give w_plus or styles=(z1, z2, crossover)")
            w_plus = mix_latents(self.g.style, self.g.n_latent, *styles)
        o = synthesize(self.g, w_plus, noise, max_resolution)
        return {"image": o.image, "rgb": o.rgb, "features": o.features, "w_plus": w_plus}
