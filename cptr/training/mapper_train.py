"""Training StyleCLIP levels mappers (``cptr-train mapper``).

Loss (StyleCLIP's): ``λ_clip * CLIP(G(w_hat), prompt) + λ_L2 * ||w_hat - w||² + λ_id * ID(G(w_hat), G(w))``
with ``w_hat = w + step * M(w)`` (step 0.1) and defaults λ_clip 1.0, λ_L2 0.8, λ_id 0.1. Latents come
from the generator's mapping network (truncation 0.7 towards the average latent, as StyleCLIP) or
from encoder inversions of a folder of aligned faces. The generator, CLIP and ArcFace stay frozen;
only the mapper learns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cptr.models.mapper import LevelsMapper
from cptr.models.stylegan2 import Generator
from cptr.training.monitor import StepProgress


@dataclass
class MapperLossWeights:
    clip: float = 1.0
    l2: float = 0.8
    id: float = 0.1


def sample_latents(g: Generator, n: int, truncation: float = 0.7, seed: int = 0, batch: int = 64) -> torch.Tensor:
    """``n`` W+ latents [n, n_latent, D] from the mapping network, truncated towards the mean latent."""
    device = g.input.input.device
    gen = torch.Generator().manual_seed(seed)
    mean = getattr(g, "latent_avg", None)
    if mean is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            mean = g.mean_latent(4096)
    mean = mean.reshape(1, -1).to(device)
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), g.style_dim, generator=gen).to(device)
            w = g.style(z)
            w = mean + truncation * (w - mean)
            out.append(w.unsqueeze(1).expand(-1, g.n_latent, -1))
    return torch.cat(out).contiguous()


def training_view(g: Generator) -> Generator:
    """``g`` itself on CUDA; on CPU a copy with the shared-weight modulated conv (same numbers,
    several times faster backward than the grouped conv there)."""
    if g.input.input.is_cuda:
        return g
    import copy

    from cptr.models.stylegan2 import set_fused_modconv

    view = set_fused_modconv(copy.deepcopy(g), False)
    view.latent_avg = getattr(g, "latent_avg", None)
    return view


def render(g: Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """Deterministic synthesis (stored noise) of W+ latents."""
    img, _ = g([w_plus], input_is_latent=True, randomize_noise=False)
    return img


def mapper_loss(
    mapper: LevelsMapper,
    g: Generator,
    w: torch.Tensor,
    clip_loss: nn.Module | None,
    id_loss: nn.Module | None = None,
    weights: MapperLossWeights = MapperLossWeights(),
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """The total loss, its parts and the edited latents for one batch of W+ ``w``."""
    w_hat = mapper.edit(w)
    x_hat = render(g, w_hat)
    parts: dict[str, float] = {}
    loss = x_hat.new_zeros(())
    if clip_loss is not None and weights.clip > 0:
        c = clip_loss(x_hat)
        parts["clip"] = float(c.detach())
        loss = loss + weights.clip * c
    l2 = F.mse_loss(w_hat, w)
    parts["l2"] = float(l2.detach())
    if weights.l2 > 0:
        loss = loss + weights.l2 * l2
    if id_loss is not None and weights.id > 0:
        with torch.no_grad():
            x = render(g, w)
        i = id_loss(x_hat, x)
        parts["id"] = float(i.detach())
        loss = loss + weights.id * i
    parts["loss"] = float(loss.detach())
    return loss, parts, w_hat


def train_mapper(
    mapper: LevelsMapper,
    g: Generator,
    latents: torch.Tensor,
    clip_loss: nn.Module | None,
    id_loss: nn.Module | None = None,
    weights: MapperLossWeights = MapperLossWeights(),
    steps: int = 1000,
    batch: int = 4,
    lr: float = 0.5,
    seed: int = 0,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Optimise ``mapper`` (Adam, ``lr`` on equalised weights, as StyleCLIP's 0.5) on batches of ``latents``.

    Returns the per-step loss parts. ``callback(step, parts)`` runs after every step (sample
    grids, checkpoints).
    """
    if latents.ndim != 3 or latents.shape[1:] != (mapper.n_latent, mapper.style_dim):
        raise ValueError(f"latents must be [N, {mapper.n_latent}, {mapper.style_dim}], got {tuple(latents.shape)}")
    for p in g.parameters():
        p.requires_grad_(False)
    g.eval()
    mapper.train()
    g = training_view(g)
    opt = torch.optim.Adam(mapper.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    with StepProgress(steps, "mapper", progress, callback) as report:
        for step in range(steps):
            idx = torch.randint(0, latents.shape[0], (batch,), generator=gen)
            w = latents[idx].to(next(mapper.parameters()).device)
            loss, parts, _ = mapper_loss(mapper, g, w, clip_loss, id_loss, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(parts)
            report.step(step + 1, parts)
    mapper.eval()
    return history


def save_edit_grid(g: Generator, mapper: LevelsMapper, latents: torch.Tensor, path: str | Path) -> None:
    """A two-row picture: the originals on top, their edits below."""
    from cptr.imaging import grid, save_image, to_uint8

    with torch.no_grad():
        before = render(g, latents)
        after = render(g, mapper.edit(latents))
    save_image(grid(to_uint8(torch.cat([before, after])), cols=latents.shape[0]), path)


def prompt_slug(prompt: str) -> str:
    """A registry-safe name for a prompt: 'a really angry face' -> 'a_really_angry_face'."""
    slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:48].strip("_")
    return slug or "edit"
