"""Latents of a generator: the style-mixing rule, sampling W+ from its mapping network, and
deterministic synthesis of W+.

One home for the rules every layer uses (the generator's forward pass, training, the served NumPy
stages, the in-process pipeline, the demo's measurements, the judges, the benchmarks).

**Style mixing.** Two latents ``w`` and ``w_mix`` and a crossover ``c`` make
``W+[i] = w`` for ``i < c`` and ``W+[i] = w_mix`` for ``i >= c``. A crossover of 0, of ``n_latent`` or
more, or none at all means no mixing: ``w`` everywhere. (``c = 0`` is "no mixing", not "``w_mix``
everywhere": it is the served API's way to say "no mix".)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cptr.contracts import DEFAULT_TRUNCATION

if TYPE_CHECKING:  # types only: the generator imports this module, and the served NumPy stages use the
    import torch  # rule (mixes, mix_w_plus_np) without torch, which the torch functions import themselves

    from cptr.models.stylegan2 import Generator


def mixes(crossover: int | None, n_latent: int) -> bool:
    """Whether ``crossover`` mixes two latents (see the module docstring)."""
    if crossover is not None and crossover < 0:
        raise ValueError(f"a style-mixing crossover must be >= 0, got {crossover}")
    return crossover is not None and 0 < crossover < n_latent


def mix_w_plus(w: torch.Tensor, w_mix: torch.Tensor | None, crossover: int | None, n_latent: int) -> torch.Tensor:
    """W+ ``[B, n_latent, D]`` from ``w`` and ``w_mix`` ``[B, D]`` by the mixing rule (differentiable)."""
    import torch  # heavy: only the torch functions need it (see the imports above)

    if w_mix is None or not mixes(crossover, n_latent):
        return w.unsqueeze(1).expand(-1, n_latent, -1)
    assert crossover is not None
    return torch.cat([w.unsqueeze(1).expand(-1, crossover, -1), w_mix.unsqueeze(1).expand(-1, n_latent - crossover, -1)], 1)


def mix_w_plus_np(w: np.ndarray, w_mix: np.ndarray, crossovers: np.ndarray, n_latent: int) -> np.ndarray:
    """The mixing rule per sample in NumPy: ``w``, ``w_mix`` ``[B, D]``, ``crossovers`` ``[B]`` -> float32 ``[B, n_latent, D]``."""
    out = np.repeat(np.asarray(w, np.float32)[:, None, :], n_latent, axis=1)
    for i, c in enumerate(np.asarray(crossovers).reshape(-1)):
        if mixes(int(c), n_latent):
            out[i, int(c) :] = w_mix[i]
    return out


def sample_latents(g: Generator, n: int, truncation: float = DEFAULT_TRUNCATION, seed: int = 0, batch: int = 64) -> torch.Tensor:
    """``n`` W+ latents [n, n_latent, D] from the mapping network, truncated towards the mean latent."""
    import torch  # heavy: only the torch functions need it (see the imports above)

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
