"""Blending a source generator with its fine-tuned (target) version.

Three knobs, all resolution-aware (the Toonify recipe):

* ``alpha`` interpolates every synthesis parameter between source (0) and target (1).
* ``swap_res`` takes layers below that resolution from the source and layers at and above it from
  the target (scaled by ``alpha``): coarse structure of a real face, fine texture of a cartoon.
* ``blend_width`` replaces the hard swap by a sigmoid over ``log2(resolution)`` centred on
  ``log2(swap_res)``; larger values give a smoother transition.

The weight given to the target at resolution ``r`` is ``alpha * m(r)`` with ``m(r) = 1`` without
``swap_res``, ``m(r) = [r >= swap_res]`` for a hard swap, and
``m(r) = sigmoid((log2 r - log2 swap_res) / blend_width)`` for a soft one. Parameters are blended
with ``torch.lerp``, so ``alpha = 0`` gives the source and ``alpha = 1`` (with ``m = 1``) the target
bit for bit. The mapping network and ``latent_avg`` always come from the source (W space stays the
source's, so encoders and mappers trained for the source keep working). Noise buffers are not
interpolated (mixing two white-noise maps would shrink their variance): each one comes from the
target where its layer's target weight is >= 0.5, else from the source.

Latent injection (FreezeSG): ``inject_k`` keeps the first ``k`` W+ entries (the coarse layers that
carry pose and face shape) from the *unedited* W+ whenever an upstream stage edits the latent. The
synthesis graph itself takes one W+ like any other; :func:`inject_latents` is the rule, and the
exporter applies it inside the exported mapper graphs (``mapper_<style>_<prompt>`` outputs
``cat(w[:, :k], edited[:, k:])``) so that every path into ``synthesis_<style>`` gets the same W+.
"""

from __future__ import annotations

import copy
import math
import re

import torch
from torch import nn

from cptr.models.stylegan2 import Generator

__all__ = [
    "GeneratorMismatchError",
    "blend_generators",
    "check_compatible",
    "inject_latents",
    "parameter_resolution",
    "target_weight",
    "InjectedLatentEdit",
]


class GeneratorMismatchError(ValueError):
    """Two generators cannot be blended: their architectures differ."""


def check_compatible(source: Generator, target: Generator) -> None:
    """Raise :class:`GeneratorMismatchError` unless both generators share one architecture."""
    problems = []
    for attr in ("size", "style_dim", "n_mlp", "blur_kernel"):
        a, b = getattr(source, attr), getattr(target, attr)
        if a != b:
            problems.append(f"{attr}: source {a} vs target {b}")
    if source.channels != target.channels:
        diff = {r: (source.channels.get(r), target.channels.get(r)) for r in sorted(set(source.channels) | set(target.channels))}
        diff = {r: v for r, v in diff.items() if v[0] != v[1]}
        problems.append(f"channels (resolution: source, target): {diff}")
    if problems:
        raise GeneratorMismatchError(
            "the source and target generators are not compatible (a fine-tuned target must keep the "
            "source architecture): " + "; ".join(problems)
        )


_RES_PATTERNS = [
    (re.compile(r"^(input\.|conv1\.|to_rgb1\.)"), lambda m, g: 4),
    (re.compile(r"^convs\.(\d+)\."), lambda m, g: g.layer_resolution(int(m.group(1)) + 1)),  # convs[i] is layer i + 1
    (re.compile(r"^to_rgbs\.(\d+)\."), lambda m, g: g.layer_resolution(2 * int(m.group(1)) + 2)),  # after convs[2j + 1]
    (re.compile(r"^noises\.noise_(\d+)$"), lambda m, g: g.layer_resolution(int(m.group(1)))),
]


def parameter_resolution(name: str, g: Generator) -> int | None:
    """Output resolution of the synthesis layer that owns state-dict entry ``name``.

    ``None`` for the mapping network (``style.*``), which is not blended.
    """
    if name.startswith("style."):
        return None
    for pattern, res in _RES_PATTERNS:
        m = pattern.match(name)
        if m:
            return res(m, g)
    raise KeyError(f"cannot tell which resolution state-dict entry {name!r} belongs to")


def _check_options(g: Generator, alpha: float, swap_res: int | None, blend_width: float | None) -> None:
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if swap_res is not None:
        valid = [2**i for i in range(2, g.log_size + 1)]
        if swap_res not in valid:
            raise ValueError(f"swap_res must be one of the generator's resolutions {valid}, got {swap_res}")
    if blend_width is not None:
        if swap_res is None:
            raise ValueError("blend_width needs swap_res (the centre of the sigmoid transition)")
        if not (math.isfinite(blend_width) and blend_width > 0):
            raise ValueError(f"blend_width must be > 0 (in octaves of resolution), got {blend_width}")


def target_weight(res: int, alpha: float, swap_res: int | None = None, blend_width: float | None = None) -> float:
    """Weight of the target at resolution ``res``: ``alpha * m(res)`` (see the module docstring)."""
    if swap_res is None:
        m = 1.0
    elif blend_width is None:
        m = 1.0 if res >= swap_res else 0.0
    else:
        m = 1.0 / (1.0 + math.exp(-(math.log2(res) - math.log2(swap_res)) / blend_width))
    return float(alpha) * m


@torch.no_grad()
def blend_generators(
    source: Generator,
    target: Generator,
    alpha: float,
    swap_res: int | None = None,
    blend_width: float | None = None,
) -> Generator:
    """A new generator: the source's mapping network with synthesis weights blended toward the target.

    ``source`` and ``target`` are left untouched. The result is in eval mode, without gradients, and
    carries ``blend_weights`` (resolution -> target weight) and ``latent_avg`` (from the source).
    """
    check_compatible(source, target)
    _check_options(source, alpha, swap_res, blend_width)
    out = copy.deepcopy(source).eval().requires_grad_(False)
    tgt = target.state_dict()
    weights: dict[int, float] = {}
    new_state = {}
    for name, value in out.state_dict().items():
        res = parameter_resolution(name, out)
        if res is None:
            continue
        t = weights.setdefault(res, target_weight(res, alpha, swap_res, blend_width))
        other = tgt[name].to(value.device, value.dtype)
        if name.startswith("noises.") or name.endswith(".kernel"):
            new_state[name] = other.clone() if t >= 0.5 else value.clone()
        else:
            new_state[name] = torch.lerp(value, other, t)
    out.load_state_dict(new_state, strict=False)
    out.blend_weights = dict(sorted(weights.items()))
    src_avg = getattr(source, "latent_avg", None)
    out.latent_avg = None if src_avg is None else src_avg.detach().clone()
    return out


def inject_latents(w_edited: torch.Tensor, w_source: torch.Tensor, k: int) -> torch.Tensor:
    """W+ whose first ``k`` entries come from ``w_source`` and the rest from ``w_edited`` ([B, n, D])."""
    if w_edited.shape != w_source.shape or w_edited.ndim != 3:
        raise ValueError(f"expected two W+ tensors [B, n_latent, D] of one shape, got {tuple(w_edited.shape)} and {tuple(w_source.shape)}")
    n = w_edited.shape[1]
    if not 0 <= k <= n:
        raise ValueError(f"inject_k must be in [0, {n}], got {k}")
    if k == 0:
        return w_edited
    return torch.cat([w_source[:, :k], w_edited[:, k:]], dim=1)


class InjectedLatentEdit(nn.Module):
    """Wrap a W+ -> W+ edit (a mapper) so its first ``k`` output entries are the unedited input's."""

    def __init__(self, edit: nn.Module, k: int):
        super().__init__()
        self.edit = edit
        self.k = int(k)

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        return inject_latents(self.edit(w_plus), w_plus, self.k)
