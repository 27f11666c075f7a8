"""Adaptive discriminator augmentation (ADA, Karras et al. 2020) in pure, differentiable torch.

The pipeline is the "bgc" family of stylegan2-ada, compacted: geometric transforms (x-flip,
90-degree rotations, integer translation, isotropic scaling, arbitrary rotation, anisotropic
scaling) compose into one affine map per image, applied with ``grid_sample`` and reflection padding;
colour transforms (brightness, contrast, saturation) compose into one 4x4 matrix per image. Each
transform is applied to each image independently with probability ``p``, so for ``p < 1`` the
augmentations do not leak into the generator. Gradients flow to the input images (the generator
and R1 need them); images whose transforms were all skipped are returned bit for bit.

Parameters are drawn by :func:`sample_augment_params` for a whole (global) batch from an explicit
``torch.Generator``; ranks keep their rows with :meth:`AugmentParams.select`.

:class:`AdaptiveAugment` tunes ``p`` with the r_t = E[sign(D(real))] heuristic: every ``interval``
steps, ``p += sign(r_t - target) * images / length`` (``length`` images take p from 0 to 1; the
stylegan2-ada default is 500k).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

TRANSFORMS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "brightness", "contrast", "saturation")

# Strengths of the stylegan2-ada "bgc" pipeline.
XINT_MAX = 0.125
SCALE_STD = 0.2
ANISO_STD = 0.2
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
SATURATION_STD = 1.0


@dataclass
class AugmentParams:
    """Per-image transforms: ``geom`` [N, 3, 3] maps output to input coordinates (in [-1, 1]),
    ``color`` [N, 4, 4] acts on homogeneous RGB; the masks say which images have a non-identity one."""

    geom: torch.Tensor
    geom_active: torch.Tensor
    color: torch.Tensor
    color_active: torch.Tensor

    def select(self, index: torch.Tensor) -> AugmentParams:
        return AugmentParams(self.geom[index], self.geom_active[index], self.color[index], self.color_active[index])

    def to(self, device: torch.device | str) -> AugmentParams:
        return AugmentParams(self.geom.to(device), self.geom_active.to(device), self.color.to(device), self.color_active.to(device))


def _eye(n: int, k: int) -> torch.Tensor:
    return torch.eye(k).expand(n, k, k).clone()


def sample_augment_params(
    n: int, p: float, size: int, generator: torch.Generator, transforms: tuple[str, ...] = TRANSFORMS
) -> AugmentParams:
    """Draw the transforms of ``n`` images of ``size`` px, each transform applied with probability ``p``.

    The number of draws does not depend on ``p``, so a batch's randomness is the same for every p.
    """
    unknown = set(transforms) - set(TRANSFORMS)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}; known: {', '.join(TRANSFORMS)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augment probability must be in [0, 1], got {p}")

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    geom, color = _eye(n, 3), _eye(n, 4)
    geom_active = torch.zeros(n, dtype=torch.bool)
    color_active = torch.zeros(n, dtype=torch.bool)

    def apply(kind: str, mask: torch.Tensor, m: torch.Tensor) -> None:
        nonlocal geom, color
        eye = _eye(n, m.shape[-1])
        m = torch.where(mask[:, None, None], m, eye)
        if kind == "geom":
            geom = geom @ m
            geom_active.logical_or_(mask)
        else:
            color = m @ color
            color_active.logical_or_(mask)

    for name in TRANSFORMS:  # fixed order and a fixed number of draws per transform
        mask = rand(n) < p
        if name not in transforms:
            mask = torch.zeros_like(mask)
        if name == "xflip":
            flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
            m = _eye(n, 3)
            m[:, 0, 0] = flip
            apply("geom", mask & (flip < 0), m)
        elif name == "rotate90":
            k = torch.floor(rand(n) * 4).clamp(max=3)
            m = _rotation(k * (math.pi / 2))
            m[:, :2, :2] = m[:, :2, :2].round()  # exact quarter turns
            apply("geom", mask & (k > 0), m)
        elif name == "xint":
            shift = torch.round((rand(n, 2) * 2 - 1) * XINT_MAX * size)  # whole pixels
            m = _eye(n, 3)
            m[:, :2, 2] = shift * 2 / size
            apply("geom", mask & (shift.abs().sum(1) > 0), m)
        elif name == "scale":
            s = torch.exp2(randn(n) * SCALE_STD)
            m = _eye(n, 3)
            m[:, 0, 0] = m[:, 1, 1] = s
            apply("geom", mask, m)
        elif name == "rotate":
            apply("geom", mask, _rotation((rand(n) * 2 - 1) * math.pi))
        elif name == "aniso":
            s = torch.exp2(randn(n) * ANISO_STD)
            m = _eye(n, 3)
            m[:, 0, 0], m[:, 1, 1] = s, 1 / s
            apply("geom", mask, m)
        elif name == "brightness":
            b = randn(n) * BRIGHTNESS_STD
            m = _eye(n, 4)
            m[:, :3, 3] = b[:, None]
            apply("color", mask, m)
        elif name == "contrast":
            c = torch.exp2(randn(n) * CONTRAST_STD)
            m = _eye(n, 4)
            m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = c
            apply("color", mask, m)
        elif name == "saturation":
            s = torch.exp2(randn(n) * SATURATION_STD)
            v = torch.full((3, 1), 1 / math.sqrt(3))
            vv = v @ v.t()
            m = _eye(n, 4)
            m[:, :3, :3] = vv + (torch.eye(3) - vv) * s[:, None, None]
            apply("color", mask, m)
    return AugmentParams(geom, geom_active, color, color_active)


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(theta.shape[0], 3)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def augment(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Apply ``params`` to ``images`` [N, 3, H, W] (square); differentiable with respect to the images."""
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected square RGB images [N, 3, S, S], got {tuple(images.shape)}")
    if params.geom.shape[0] != images.shape[0]:
        raise ValueError(f"{params.geom.shape[0]} augmentation parameter sets for {images.shape[0]} images")
    params = params.to(images.device)
    out = images
    idx = params.geom_active.nonzero().squeeze(1)
    if idx.numel():
        x = out.index_select(0, idx)
        theta = params.geom.index_select(0, idx)[:, :2, :].to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        out = out.index_copy(0, idx, warped)
    idx = params.color_active.nonzero().squeeze(1)
    if idx.numel():
        x = out.index_select(0, idx)
        c = params.color.index_select(0, idx).to(x.dtype)
        coloured = torch.einsum("nij,njhw->nihw", c[:, :3, :3], x) + c[:, :3, 3, None, None]
        out = out.index_copy(0, idx, coloured)
    return out


class AdaptiveAugment:
    """Tunes the augmentation probability toward ``r_t = E[sign(D(real))] == target``."""

    def __init__(self, target: float = 0.6, length: int = 500_000, interval: int = 4, p: float = 0.0):
        if not 0 < target < 1:
            raise ValueError(f"ADA target must be in (0, 1), got {target}")
        if length <= 0 or interval <= 0:
            raise ValueError("ADA length and interval must be positive")
        self.target, self.length, self.interval = float(target), int(length), int(interval)
        self.p = float(p)
        self.r_t = 0.0
        self._sign_sum = 0.0
        self._count = 0.0
        self._calls = 0

    def update(self, real_pred: torch.Tensor, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
        """Record one batch of real logits; every ``interval`` calls adjust ``p``. Returns ``p``.

        ``reduce_sum`` sums a tensor over ranks, so every rank sees the global statistics.
        """
        self._sign_sum += float(torch.sign(real_pred.detach()).sum().item())
        self._count += float(real_pred.numel())
        self._calls += 1
        if self._calls % self.interval == 0:
            stats = torch.tensor([self._sign_sum, self._count], dtype=torch.float64, device=real_pred.device)
            if reduce_sum is not None:
                stats = reduce_sum(stats)
            sign_sum, count = float(stats[0]), float(stats[1])
            self.r_t = sign_sum / max(count, 1.0)
            adjust = math.copysign(1.0, self.r_t - self.target) if self.r_t != self.target else 0.0
            self.p = min(1.0, max(0.0, self.p + adjust * count / self.length))
            self._sign_sum, self._count = 0.0, 0.0
        return self.p

    def state_dict(self) -> dict[str, float | int]:
        return {
            "p": self.p,
            "r_t": self.r_t,
            "sign_sum": self._sign_sum,
            "count": self._count,
            "calls": self._calls,
            "target": self.target,
            "length": self.length,
            "interval": self.interval,
        }

    def load_state_dict(self, state: dict) -> None:
        self.p, self.r_t = float(state["p"]), float(state.get("r_t", 0.0))
        self._sign_sum, self._count = float(state.get("sign_sum", 0.0)), float(state.get("count", 0.0))
        self._calls = int(state.get("calls", 0))
