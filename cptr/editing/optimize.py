"""StyleCLIP latent optimisation: edit one W+ latent against a text loss (``cptr edit``).

The objective and schedule are StyleCLIP's ``optimization/run_optimization.py``:

* ``mode="edit"``: ``loss = text_loss(G(w)) + l2_lambda * ((w - w0) ** 2).sum() + id_lambda * id_loss(G(w), G(w0))``;
* ``mode="free_generation"``: ``loss = text_loss(G(w))`` alone;
* Adam on ``w`` (W+), learning rate ``lr * ramp(t)`` with ``t = step / steps`` and :func:`get_lr`'s
  ramp: a linear warm-up over the first 5 %, a cosine ramp-down over the last 25 %.

``text_loss`` is the same module the mapper trainer uses: :class:`cptr.models.clip_loss.CLIPLoss`
with CLIP weights, or :class:`cptr.data.critic.AttributeLoss` (``--critic ATTRIBUTE``) as the stand-in
when they are absent; ``id_loss`` is :class:`cptr.models.arcface.IDLoss`. No loss is written twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from cptr.models.stylegan2 import Generator
from cptr.training.mapper_train import render as synthesize  # deterministic synthesis of W+, as the mapper trainer renders

MODES = ("edit", "free_generation")


def get_lr(t: float, initial_lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """StyleCLIP's learning-rate schedule at progress ``t`` in [0, 1)."""
    lr_ramp = min(1.0, (1.0 - t) / rampdown)
    lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
    lr_ramp = lr_ramp * min(1.0, t / rampup)
    return initial_lr * lr_ramp


@dataclass(frozen=True)
class OptimizeConfig:
    """StyleCLIP's options and defaults (``--lr 0.1 --step 300 --l2_lambda 0.008 --id_lambda 0``)."""

    steps: int = 300
    lr: float = 0.1
    l2_lambda: float = 0.008
    id_lambda: float = 0.0
    mode: str = "edit"

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.steps < 1 or self.lr <= 0 or self.l2_lambda < 0 or self.id_lambda < 0:
            raise ValueError(f"need steps >= 1, lr > 0, l2_lambda >= 0 and id_lambda >= 0; got {self}")


@dataclass
class EditResult:
    """The optimised latent and the record of the run."""

    w: torch.Tensor  # [1, n_latent, style_dim]
    w0: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)  # per step: lr, text, l2, id, loss
    snapshots: list[torch.Tensor] = field(default_factory=list)  # W+ every ``snapshot_every`` steps


def objective(
    g: Generator,
    w: torch.Tensor,
    w0: torch.Tensor,
    text_loss: nn.Module,
    cfg: OptimizeConfig,
    id_loss: nn.Module | None = None,
    image0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one step and its parts (see the module docstring)."""
    img = synthesize(g, w)
    text = text_loss(img)
    parts = {"text": float(text.detach())}
    loss = text
    if cfg.mode == "edit":
        l2 = ((w0 - w) ** 2).sum()
        parts["l2"] = float(l2.detach())
        loss = loss + cfg.l2_lambda * l2
        if cfg.id_lambda > 0:
            if id_loss is None or image0 is None:
                raise ValueError("id_lambda > 0 needs an identity loss (ArcFace weights)")
            i = id_loss(img, image0)
            parts["id"] = float(i.detach())
            loss = loss + cfg.id_lambda * i
    parts["loss"] = float(loss.detach())
    return loss, parts


def optimize_latent(
    g: Generator,
    w0: torch.Tensor,
    text_loss: nn.Module,
    cfg: OptimizeConfig = OptimizeConfig(),
    id_loss: nn.Module | None = None,
    snapshot_every: int = 0,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> EditResult:
    """Optimise ``w0`` [1, n_latent, style_dim] (a W+ of ``g``) against ``text_loss``; ``g`` stays frozen."""
    cfg.validate()
    if w0.ndim != 3 or w0.shape[1:] != (g.n_latent, g.style_dim):
        raise ValueError(f"w0 must be W+ [B, {g.n_latent}, {g.style_dim}], got {tuple(w0.shape)}")
    g.eval().requires_grad_(False)
    w0 = w0.detach().clone()
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=cfg.lr)
    image0 = None
    if cfg.mode == "edit" and cfg.id_lambda > 0:
        with torch.no_grad():
            image0 = synthesize(g, w0)
    result = EditResult(w=w, w0=w0)
    for i in range(cfg.steps):
        lr = get_lr(i / cfg.steps, cfg.lr)
        opt.param_groups[0]["lr"] = lr
        loss, parts = objective(g, w, w0, text_loss, cfg, id_loss, image0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        parts["lr"] = lr
        result.history.append(parts)
        if snapshot_every and (i + 1) % snapshot_every == 0:
            result.snapshots.append(w.detach().clone())
        if callback is not None:
            callback(i + 1, parts)
    result.w = w.detach()
    return result
