"""Training the image -> W+ encoder on the generator's own samples (``cptr-train encoder``).

Each step samples latents from the mapping network (truncation drawn in [0.5, 1], with style mixing
so every W+ entry varies), renders them (stored noise), and trains the encoder to recover them:
``λ_latent * ||E(x) - w||² + λ_l2 * ||G(E(x)) - x||² + λ_l1 * |G(E(x)) - x| + λ_id * ID(G(E(x)), x)
+ λ_perceptual * P(G(E(x)), x)``. Optional real aligned faces (``--images``) add the pixel, identity
and perceptual losses on real pictures, where no latent target exists. Generator images are resized
to the encoder's input size (area pooling).

``P`` takes the place of pSp's LPIPS term: a face critic's features as an LPIPS-style distance
(:class:`cptr.data.critic.PerceptualLoss`, ``--perceptual-weights``). Without it, pixel losses alone
taught the demo encoder the colours of a real render but not where its small features sit (the
reconstructions looked ahead whatever the input's yaw).

The generator, ArcFace and the perceptual network stay frozen. The shipped encoder of the embedded
``demo`` style (:func:`cptr.styles.builtin.demo_encoder`) was trained with this module by ``python -m cptr.demo.train``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cptr.contracts import ALIGNED_SIZE
from cptr.data.critic import AttributeMatchLoss, PerceptualLoss, load_critic
from cptr.imaging import grid, save_image, to_uint8
from cptr.models.arcface import IDLoss, load_arcface
from cptr.models.checkpoints import CheckpointError
from cptr.models.clip_shim import WeightsNotFoundError
from cptr.models.encoder import Encoder, save_encoder, small_encoder_config
from cptr.models.stylegan2 import Generator
from cptr.progress import StepProgress
from cptr.styles import StyleError, set_encoder
from cptr.training.jobs import JobError, endless_batches, load_source_generator, pick_device
from cptr.training.jobs_options import EncoderJob
from cptr.training.mapper_train import render, training_view  # the same frozen, deterministic synthesis


@dataclass
class EncoderLossWeights:
    latent: float = 1.0
    l2: float = 1.0
    l1: float = 0.0
    id: float = 0.1
    perceptual: float = 0.8  # pSp's LPIPS lambda; used only with a perceptual network
    # e4e's delta regularisation: the mean squared offset of W+ entries 1.. from entry 0, which keeps the encoder's
    # W+ near W (one w for every layer), where the generators were trained
    delta: float = 0.0
    # the perceptual critic's geometry attributes (pose, mouth, face width) matched between reconstruction and image
    attributes: float = 0.0


def delta_penalty(w_plus: torch.Tensor) -> torch.Tensor:
    """Mean squared offset of the W+ entries ``[B, n, D]`` 1.. from entry 0 (0 for a W+ that is one repeated w)."""
    return (w_plus[:, 1:] - w_plus[:, :1]).pow(2).mean()


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Generator images to ``size`` (area pooling down, bilinear up)."""
    h = images.shape[-1]
    if h == size:
        return images
    if h > size:
        return F.adaptive_avg_pool2d(images, (size, size))
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def generator_mean_latent(g: Generator, seed: int = 0) -> torch.Tensor:
    """``g.latent_avg`` if the checkpoint has one, else the mean of 4096 mapped z (seeded)."""
    la = getattr(g, "latent_avg", None)
    if la is not None:
        return la.reshape(-1).detach()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return g.mean_latent(4096).reshape(-1).detach()


def sample_training_latents(g: Generator, batch: int, gen: torch.Generator, mean: torch.Tensor, mix_prob: float = 0.5) -> torch.Tensor:
    """W+ [batch, n_latent, D]: mapped z, truncation psi ~ U(0.5, 1), two-latent mixing with ``mix_prob``."""
    device = mean.device
    z = torch.randn(2 * batch, g.style_dim, generator=gen).to(device)
    psi = (0.5 + 0.5 * torch.rand(2 * batch, 1, generator=gen)).to(device)
    with torch.no_grad():
        w = mean + psi * (g.style(z) - mean)
    w1, w2 = w[:batch], w[batch:]
    cut = torch.randint(1, g.n_latent, (batch,), generator=gen)
    mix = torch.rand(batch, generator=gen) < mix_prob
    idx = torch.arange(g.n_latent)
    use_second = (mix[:, None] & (idx[None, :] >= cut[:, None])).to(device)
    return torch.where(use_second[..., None], w2[:, None], w1[:, None])


def train_encoder(
    encoder: Encoder,
    g: Generator,
    steps: int = 1000,
    batch: int = 8,
    lr: float = 1e-3,
    weights: EncoderLossWeights = EncoderLossWeights(),
    id_loss: nn.Module | None = None,
    real_images: Iterator[torch.Tensor] | None = None,
    seed: int = 0,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    perceptual_loss: nn.Module | None = None,
    attribute_loss: nn.Module | None = None,
) -> list[dict[str, float]]:
    """Optimise ``encoder`` with Adam; returns per-step loss parts.

    ``real_images`` (an endless iterator of [B, 3, S, S] batches in [-1, 1]) adds a real-photo
    reconstruction term each step. ``id_loss`` and ``perceptual_loss`` are ``f(reconstruction,
    target) -> scalar`` modules (ArcFace's identity loss, :class:`cptr.data.critic.PerceptualLoss`), and so is
    ``attribute_loss`` (:class:`cptr.data.critic.AttributeMatchLoss`).
    """
    if (encoder.n_latent, encoder.style_dim) != (g.n_latent, g.style_dim):
        raise ValueError(
            f"the encoder predicts W+ [{encoder.n_latent}, {encoder.style_dim}] but the generator uses [{g.n_latent}, {g.style_dim}]"
        )
    device = encoder.latent_avg.device
    g = training_view(g)
    mean = generator_mean_latent(g, seed).to(device)
    encoder.train()
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = _ImageLosses(weights, id_loss, perceptual_loss, attribute_loss)
    history: list[dict[str, float]] = []
    with StepProgress(steps, "encoder", progress, callback) as report:
        for step in range(steps):
            w = sample_training_latents(g, batch, gen, mean)
            with torch.no_grad():
                x = render(g, w)
            w_hat = encoder(resize_to(x, encoder.input_size))
            loss = weights.latent * F.mse_loss(w_hat, w)
            parts = {"latent": float(F.mse_loss(w_hat, w).detach())}
            if losses.active:
                loss = loss + losses(render(g, w_hat), x, parts)
            w_all = [w_hat]
            if real_images is not None:
                real = next(real_images).to(device)
                w_real = encoder(resize_to(real, encoder.input_size))
                loss = loss + losses(render(g, w_real), resize_to(real, g.size), parts, "real_")
                w_all.append(w_real)
            if weights.delta > 0:
                delta = delta_penalty(torch.cat(w_all))
                parts["delta"] = float(delta.detach())
                loss = loss + weights.delta * delta
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            parts["loss"] = float(loss.detach())
            history.append(parts)
            report.step(step + 1, parts)
    encoder.eval()
    return history


class _ImageLosses:
    """The weighted image terms between a reconstruction and its target (each logged in ``parts``)."""

    def __init__(
        self,
        weights: EncoderLossWeights,
        id_loss: nn.Module | None,
        perceptual_loss: nn.Module | None,
        attribute_loss: nn.Module | None = None,
    ):
        terms: list[tuple[str, float, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = [
            ("l2", weights.l2, F.mse_loss),
            ("l1", weights.l1, F.l1_loss),
        ]
        if id_loss is not None:
            terms.append(("id", weights.id, id_loss))
        if perceptual_loss is not None:
            terms.append(("perceptual", weights.perceptual, perceptual_loss))
        if attribute_loss is not None:
            terms.append(("attributes", weights.attributes, attribute_loss))
        self.terms = [t for t in terms if t[1] > 0]

    @property
    def active(self) -> bool:
        return bool(self.terms)

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor, parts: dict[str, float], prefix: str = "") -> torch.Tensor:
        total = x_hat.new_zeros(())
        for name, weight, fn in self.terms:
            v = fn(x_hat, x)
            parts[prefix + name] = float(v.detach())
            total = total + weight * v
        return total


@torch.no_grad()
def reconstruction_error(encoder: Encoder, g: Generator, n: int = 16, seed: int = 1234) -> tuple[float, float]:
    """Pixel MSE of ``G(E(x))`` vs ``x`` on fresh generator samples, and of ``G(latent_avg)`` (the baseline)."""
    gen = torch.Generator().manual_seed(seed)
    mean = generator_mean_latent(g).to(encoder.latent_avg.device)
    w = sample_training_latents(g, n, gen, mean)
    x = render(g, w)
    rec = render(g, encoder.eval()(resize_to(x, encoder.input_size)))
    base = render(g, encoder.latent_avg.unsqueeze(0).expand(n, -1, -1))
    return float(F.mse_loss(rec, x)), float(F.mse_loss(base, x))


def save_reconstruction_grid(enc: Encoder, g: Generator, w: torch.Tensor, path: Path) -> None:
    """Two rows: generator samples, and their reconstructions through the encoder."""

    with torch.no_grad():
        x = render(g, w)
        rec = render(g, enc.eval()(resize_to(x, enc.input_size)))
    save_image(grid(to_uint8(torch.cat([x, rec])), cols=w.shape[0]), path)


# --------------------------------------------------------------------------- the cptr-train encoder job


def run_encoder_job(job: EncoderJob, log: Callable[[str], None] = print) -> Path:
    """Set up and train an encoder: checks the options, loads the generator (and ArcFace), trains,
    writes checkpoints/ and samples/ under ``job.out``, reports the reconstruction error and (with
    ``job.register`` and a user style) sets it on the style. Returns the final checkpoint; raises
    :class:`~cptr.training.jobs.JobError`."""

    device = pick_device(job.device)
    if job.width not in ("full", "small"):
        raise JobError(f"--width must be 'full' or 'small', got {job.width!r}")
    if job.head not in ("psp", "e4e"):
        raise JobError(f"--head must be 'psp' or 'e4e', got {job.head!r}")
    g, info = load_source_generator(job.style, job.generator, device)
    idl = None
    if job.arcface_weights is not None and job.lambda_id > 0:
        try:
            idl = IDLoss(load_arcface(job.arcface_weights, device=device))
        except (WeightsNotFoundError, CheckpointError) as e:
            raise JobError(str(e)) from None
    if job.lambda_attributes > 0 and job.perceptual_weights is None:
        raise JobError("--lambda-attributes reads the --perceptual-weights critic: give --perceptual-weights")
    perceptual = attributes = None
    if job.perceptual_weights is not None and (job.lambda_perceptual > 0 or job.lambda_attributes > 0):
        try:
            critic = load_critic(job.perceptual_weights, device=device)
        except (FileNotFoundError, ValueError) as e:
            raise JobError(f"--perceptual-weights: {e}") from None
        perceptual = PerceptualLoss(critic) if job.lambda_perceptual > 0 else None
        attributes = AttributeMatchLoss(critic) if job.lambda_attributes > 0 else None
    if job.width == "full":
        cfg = {"n_latent": g.n_latent, "style_dim": g.style_dim, "input_size": ALIGNED_SIZE, "head": job.head}
    else:
        cfg = {**small_encoder_config(g.n_latent, g.style_dim, ALIGNED_SIZE), "head": job.head}
    if job.work_size < 32 or job.work_size > ALIGNED_SIZE or ALIGNED_SIZE % job.work_size:
        raise JobError(f"--work-size must divide the {ALIGNED_SIZE} px aligned crop and be >= 32 (e.g. 64, 128, 256), got {job.work_size}")
    cfg["pool"] = ALIGNED_SIZE // job.work_size
    enc = Encoder(**cfg, latent_avg=generator_mean_latent(g, job.seed).cpu()).to(device)
    real = endless_batches(job.images, ALIGNED_SIZE, job.batch, job.seed) if job.images is not None else None
    weights = EncoderLossWeights(
        job.lambda_latent, job.lambda_l2, job.lambda_l1, job.lambda_id, job.lambda_perceptual, job.lambda_delta, job.lambda_attributes
    )
    opts = {
        "batch_size": job.batch,
        "learning_rate": job.lr,
        "max_steps": job.steps,
        "l2_lambda": job.lambda_l2,
        "id_lambda": job.lambda_id,
        "w_lambda": job.lambda_latent,
        "lpips_lambda": job.lambda_perceptual if perceptual else 0.0,
        "delta_norm_lambda": job.lambda_delta,  # e4e's name
        "attributes_lambda": job.lambda_attributes if attributes else 0.0,
    }
    ckpt_dir, sample_dir = job.out / "checkpoints", job.out / "samples"
    gen = torch.Generator().manual_seed(job.seed + 99)
    fixed = sample_training_latents(g, 4, gen, generator_mean_latent(g, job.seed).to(device))

    def on_step(step: int, parts: dict[str, float]) -> None:
        if job.sample_every and (step % job.sample_every == 0 or step == 1):
            save_reconstruction_grid(enc, g, fixed, sample_dir / f"{step:06d}.png")
            enc.train()
        if job.save_every and step % job.save_every == 0 and step != job.steps:
            save_encoder(enc, ckpt_dir / f"iteration_{step}.pt", opts)

    train_encoder(
        enc,
        g,
        job.steps,
        job.batch,
        job.lr,
        weights,
        idl,
        real,
        job.seed,
        on_step,
        progress=not job.quiet,
        perceptual_loss=perceptual,
        attribute_loss=attributes,
    )
    final = ckpt_dir / "encoder.pt"
    save_encoder(enc, final, opts)
    save_reconstruction_grid(enc, g, fixed, sample_dir / "final.png")
    rec, base = reconstruction_error(enc, g)
    log(f"encoder written to {final}; reconstruction MSE {rec:.4f} (average latent: {base:.4f})")
    if job.register and job.style is not None and info is not None and not info.builtin:
        try:
            set_encoder(info.name, final.resolve())
            log(f"registered the encoder on style '{job.style}'")
        except StyleError as e:
            log(f"not registered: {e}")
    return final
