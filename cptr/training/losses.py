"""StyleGAN2 losses: non-saturating logistic, R1, path length, and the FreezeSG structure loss.

All per-sample terms are averaged over the batch, so under DistributedDataParallel (which averages
gradients over ranks of equal batch size) they equal the single-process loss on the global batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import autograd

STRUCTURE_TARGETS = ("rgb", "features")


def d_logistic_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: softplus(-D(real)) + softplus(D(fake)), batch means."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: torch.Tensor) -> torch.Tensor:
    """Generator loss: softplus(-D(G(z))), batch mean."""
    return F.softplus(-fake_pred).mean()


def r1_penalty(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||dD(x)/dx||^2 (``real_img`` must require grad)."""
    (grad,) = autograd.grad(outputs=real_pred.sum(), inputs=real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def path_length_penalty(
    fake_img: torch.Tensor,
    latents: torch.Tensor,
    mean_path_length: torch.Tensor,
    image_noise: torch.Tensor,
    decay: float = 0.01,
    reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length regulariser; returns ``(penalty, new_mean_path_length, path_lengths)``.

    ``image_noise`` ~ N(0, 1) with the image's shape (passed in so the caller controls the RNG).
    ``reduce_mean`` averages the batch mean of the path lengths over ranks, so the running mean is
    the global one and identical on every rank.
    """
    noise = image_noise / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    (grad,) = autograd.grad(outputs=(fake_img * noise).sum(), inputs=latents, create_graph=True)
    path_lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
    batch_mean = path_lengths.detach().mean()
    if reduce_mean is not None:
        batch_mean = reduce_mean(batch_mean)
    path_mean = mean_path_length + decay * (batch_mean - mean_path_length)
    penalty = (path_lengths - path_mean).pow(2).mean()
    return penalty, path_mean.detach(), path_lengths


def structure_loss(
    target: dict[int, torch.Tensor],
    source: dict[int, torch.Tensor],
    resolutions: list[int],
) -> torch.Tensor:
    """Sum over ``resolutions`` of the MSE between target and (detached) source intermediates."""
    if not resolutions:
        raise ValueError("structure_loss needs at least one resolution")
    total = None
    for res in resolutions:
        t, s = target[res], source[res].detach()
        if t.shape != s.shape:
            raise ValueError(f"structure loss at {res} px: target {tuple(t.shape)} vs source {tuple(s.shape)}")
        term = F.mse_loss(t, s)
        total = term if total is None else total + term
    return total


def structure_resolutions(size: int, n: int) -> list[int]:
    """The ``n`` lowest resolutions after the 4x4 block: 8, 16, ... (Cartoon-StyleGAN's layers 1..n)."""
    log_size = int(math.log2(size))
    if not 0 <= n <= log_size - 2:
        raise ValueError(f"structure loss layers must be in [0, {log_size - 2}] for a {size} px generator, got {n}")
    return [2 ** (3 + i) for i in range(n)]
