"""Latents of a generator: sampling W+ from its mapping network, and deterministic synthesis of W+.

One home for the rules every layer uses (training, the demo's measurements, the judges, the benchmarks).
"""

from __future__ import annotations

import torch

from cptr.models.stylegan2 import Generator


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


def render(g: Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """Deterministic synthesis (stored noise) of W+ latents ``[B, n_latent, D]`` -> images ``[B, 3, S, S]`` in [-1, 1]."""
    img, _ = g([w_plus], input_is_latent=True, randomize_noise=False)
    return img
