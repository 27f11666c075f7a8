"""The embedded ``demo`` style: a seeded, untrained generator pair that ships with the package.

It lets every command run on a fresh machine with no downloaded weights. The *source* is a
randomly initialised 256 px generator with narrow layers; the *target* copies it and perturbs the
synthesis layers at 32 px and above, much as FreezeSG fine-tuning leaves the early layers alone.
Its pictures are abstract patterns, not faces.
"""

from __future__ import annotations

import copy

import torch

from cptr.models.stylegan2 import Generator

DEMO_NAME = "demo"
DEMO_SEED = 2024
DEMO_CONFIG = {
    "size": 256,
    "style_dim": 512,
    "n_mlp": 8,
    "channels": {4: 64, 8: 64, 16: 64, 32: 32, 64: 32, 128: 16, 256: 16},
}
DEMO_FROZEN_BELOW = 32  # target layers below this resolution equal the source


def demo_generators(seed: int = DEMO_SEED) -> tuple[Generator, Generator]:
    """Build the demo (source, target) pair deterministically from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        source = Generator(**DEMO_CONFIG).eval()
        target = copy.deepcopy(source)
        with torch.no_grad():
            for j, to_rgb in enumerate(target.to_rgbs):
                res = 2 ** (j + 3)
                if res < DEMO_FROZEN_BELOW:
                    continue
                for conv in target.convs[2 * j : 2 * j + 2]:
                    conv.conv.weight.add_(0.5 * torch.randn_like(conv.conv.weight))
                to_rgb.bias.add_(torch.tensor([0.3, -0.1, -0.2]).reshape(1, 3, 1, 1))
        # Inside the seeded block: the truncation centre must be the same in every process.
        source.latent_avg = source.mean_latent(1024).reshape(-1)
        target.latent_avg = source.latent_avg.clone()
    return source.requires_grad_(False), target.requires_grad_(False)
