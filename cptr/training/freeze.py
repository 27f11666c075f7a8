"""FreezeSG: which parameters train, and how the target's W+ is built.

What is frozen (``requires_grad=False``, never given to an optimizer, never touched by the EMA):

* **Mapping network** (``style.*``): always. Source and target therefore share one mapping, so a
  latent ``z`` gives the same ``w`` in both and the fine-tuned model stays in the source's W space
  (blending, encoders and mappers keep working).
* **FreezeG** ``freeze_g = N``: the synthesis layers of the ``N`` lowest resolutions
  (``N = 1``: the 4x4 constant, ``conv1``, ``to_rgb1``; ``N = 3``: 4, 8 and 16 px). Cartoon-StyleGAN's
  ``--freezeG k`` counts the other way (the ``k`` highest resolutions *train*): at 256 px its
  ``freezeG=4`` is ``freeze_g = 3`` here.
* **FreezeD** ``freeze_d = N``: the discriminator's ``fromRGB`` layer and its first ``N`` residual
  blocks (the high-resolution end); ``final_conv``/``final_linear`` always train. At 256 px this is
  Cartoon-StyleGAN's ``--freezeD N``.

**FreezeS** ``freeze_style = K`` (how :func:`freezesg_latents` builds the two W+ of a batch): with
``w1 = mapping(z1)`` and, when style mixing is drawn, ``w2 = mapping(z2)`` and a crossover index
``c``, the *source* gets ``W+_src = [w1] * c + [w2] * (n - c)`` (or ``[w1] * n`` without mixing). The
*target* gets ``W+_tgt = W+_src[:, :K] ++ [w1] * (n - K)``: its first ``K`` entries are bitwise the
source's (a detached copy, mixing included), the rest is the first latent's ``w``. This is what
Cartoon-StyleGAN's ``put_latent`` path does. Without mixing both W+ are equal. ``K = 0`` turns FreezeS
off: the target gets the source's W+ (plain StyleGAN2 style mixing, Cartoon-StyleGAN's
``freezeStyle=-1``). The rule itself is :func:`cptr.styles.blend.inject_latents`, the one used at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cptr.models.latents import mix_w_plus
from cptr.models.stylegan2 import Discriminator, Generator
from cptr.styles.blend import inject_latents, parameter_resolution


@dataclass(frozen=True)
class FreezePlan:
    """FreezeSG settings (see the module docstring)."""

    freeze_style: int = 2
    freeze_g: int = 3
    freeze_d: int = 3

    def validate(self, g: Generator, d: Discriminator | None = None) -> None:
        n_res = g.log_size - 1  # 4 .. size
        if not 0 <= self.freeze_style <= g.n_latent:
            raise ValueError(f"freeze_style must be in [0, {g.n_latent}] (W+ entries of a {g.size} px generator), got {self.freeze_style}")
        if not 0 <= self.freeze_g < n_res:
            raise ValueError(
                f"freeze_g must be in [0, {n_res - 1}] for a {g.size} px generator ({n_res} resolutions; "
                f"freezing all of them leaves nothing to train), got {self.freeze_g}"
            )
        if d is not None:
            n_blocks = len(d.convs) - 1
            if not 0 <= self.freeze_d <= n_blocks:
                raise ValueError(f"freeze_d must be in [0, {n_blocks}] ({n_blocks} residual blocks at {d.size} px), got {self.freeze_d}")

    def frozen_resolutions(self, g: Generator) -> list[int]:
        return [2**i for i in range(2, 2 + self.freeze_g)]


def generator_trainable(g: Generator, plan: FreezePlan, train_mapping: bool = False) -> dict[str, bool]:
    """Parameter name -> trains? The ``freeze_g`` lowest resolutions don't, nor does the mapping network
    unless ``train_mapping`` (training from scratch)."""
    frozen = set(plan.frozen_resolutions(g))
    out = {}
    for name, _ in g.named_parameters():
        res = parameter_resolution(name, g)
        out[name] = (train_mapping and name.startswith("style.")) if res is None else res not in frozen
    return out


def is_noise_strength(name: str) -> bool:
    """Whether a generator parameter is a synthesis layer's per-pixel noise strength."""
    return name.endswith("noise.weight")


@torch.no_grad()
def silence_noise(*gs: Generator) -> None:
    """Set every per-pixel noise strength of ``gs`` to zero (``--noise off``)."""
    for g in gs:
        for name, p in g.named_parameters():
            if is_noise_strength(name):
                p.zero_()


def discriminator_trainable(d: Discriminator, plan: FreezePlan) -> dict[str, bool]:
    """Parameter name -> trains? ``convs.0`` (fromRGB) .. ``convs.{freeze_d}`` are frozen when freeze_d > 0."""
    out = {}
    for name, _ in d.named_parameters():
        if name.startswith("convs."):
            idx = int(name.split(".")[1])
            out[name] = not (plan.freeze_d > 0 and idx <= plan.freeze_d)
        else:
            out[name] = True
    return out


def apply_trainable(module: nn.Module, trainable: dict[str, bool]) -> list[nn.Parameter]:
    """Set ``requires_grad`` from ``trainable``; returns the trainable parameters in module order."""
    params = []
    for name, p in module.named_parameters():
        p.requires_grad_(trainable[name])
        if trainable[name]:
            params.append(p)
    return params


def set_requires_grad(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def mix_latents(mapping: nn.Module, n_latent: int, z1: torch.Tensor, z2: torch.Tensor | None, crossover: int | None) -> torch.Tensor:
    """StyleGAN2 style mixing of two mapped ``z``: [B, n_latent, style_dim] by the one rule of
    :mod:`cptr.models.latents` (``[w1] * n`` when ``z2`` is None), differentiable through ``mapping``."""
    w1 = mapping(z1)
    return mix_w_plus(w1, mapping(z2) if z2 is not None else None, crossover, n_latent)


def freezesg_latents(
    mapping: nn.Module,
    n_latent: int,
    z1: torch.Tensor,
    z2: torch.Tensor | None,
    crossover: int | None,
    freeze_style: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W+_src, W+_tgt)``, both [B, n_latent, style_dim] and without gradient (module docstring)."""
    with torch.no_grad():
        wp_src = mix_latents(mapping, n_latent, z1, z2, crossover)
        if z2 is None or freeze_style == 0:
            return wp_src.contiguous(), wp_src.contiguous()
        wp_tgt = wp_src[:, :1].expand(-1, n_latent, -1)  # entry 0 is w1 (crossover >= 1)
        return wp_src.contiguous(), inject_latents(wp_tgt, wp_src, freeze_style).contiguous()
