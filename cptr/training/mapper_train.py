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
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cptr.imaging import grid, save_image, to_uint8
from cptr.models.arcface import IDLoss, load_arcface
from cptr.models.checkpoints import CheckpointError
from cptr.models.clip_loss import CLIPLoss
from cptr.models.clip_shim import WeightsNotFoundError, load_clip
from cptr.models.encoder import load_encoder
from cptr.models.latents import render, sample_latents  # noqa: F401  (their home; re-exported for the trainers)
from cptr.models.mapper import LevelsMapper, save_mapper
from cptr.models.stylegan2 import Generator, set_fused_modconv
from cptr.progress import StepProgress
from cptr.styles import StyleError, add_mapper, get_style
from cptr.training.jobs import JobError, load_source_generator, open_image_folder, pick_device
from cptr.training.jobs_options import MapperJob


@dataclass
class MapperLossWeights:
    clip: float = 1.0
    l2: float = 0.8
    id: float = 0.1


def training_view(g: Generator) -> Generator:
    """Freezes ``g`` (no gradients, eval mode) and returns what a trainer renders through: ``g`` itself on
    CUDA; on CPU a copy with the shared-weight modulated conv (same numbers, several times faster backward
    than the grouped conv there)."""
    for p in g.parameters():
        p.requires_grad_(False)
    g.eval()
    if g.input.input.is_cuda:
        return g
    import copy

    view = set_fused_modconv(copy.deepcopy(g), False)
    view.latent_avg = getattr(g, "latent_avg", None)
    return view


@dataclass
class MapperLoss:
    """StyleCLIP's loss of a mapper edit: ``clip_loss`` (CLIP, or a stand-in) on the edited image, the latent
    L2 and ``id_loss`` (ArcFace) between the edited and the original image, weighted by ``weights``."""

    clip_loss: nn.Module | None
    id_loss: nn.Module | None = None
    weights: MapperLossWeights = field(default_factory=MapperLossWeights)

    def __call__(self, mapper: LevelsMapper, g: Generator, w: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """The total loss, its parts and the edited latents for one batch of W+ ``w``."""
        weights = self.weights
        w_hat = mapper.edit(w)
        x_hat = render(g, w_hat)
        parts: dict[str, float] = {}
        loss = x_hat.new_zeros(())
        if self.clip_loss is not None and weights.clip > 0:
            c = self.clip_loss(x_hat)
            parts["clip"] = float(c.detach())
            loss = loss + weights.clip * c
        l2 = F.mse_loss(w_hat, w)
        parts["l2"] = float(l2.detach())
        if weights.l2 > 0:
            loss = loss + weights.l2 * l2
        if self.id_loss is not None and weights.id > 0:
            with torch.no_grad():
                x = render(g, w)
            i = self.id_loss(x_hat, x)
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
    g = training_view(g)
    mapper.train()
    mapper_loss = MapperLoss(clip_loss, id_loss, weights)
    opt = torch.optim.Adam(mapper.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    with StepProgress(steps, "mapper", progress, callback) as report:
        for step in range(steps):
            idx = torch.randint(0, latents.shape[0], (batch,), generator=gen)
            w = latents[idx].to(next(mapper.parameters()).device)
            loss, parts, _ = mapper_loss(mapper, g, w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(parts)
            report.step(step + 1, parts)
    mapper.eval()
    return history


def save_edit_grid(g: Generator, mapper: LevelsMapper, latents: torch.Tensor, path: str | Path) -> None:
    """A two-row picture: the originals on top, their edits below."""

    with torch.no_grad():
        before = render(g, latents)
        after = render(g, mapper.edit(latents))
    save_image(grid(to_uint8(torch.cat([before, after])), cols=latents.shape[0]), path)


def prompt_slug(prompt: str) -> str:
    """A registry-safe name for a prompt: 'a really angry face' -> 'a_really_angry_face'."""
    slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:48].strip("_")
    return slug or "edit"


# --------------------------------------------------------------------------- the cptr-train mapper job


def run_mapper_job(job: MapperJob, log: Callable[[str], None] = print) -> Path:
    """Set up and train a mapper: checks the options, loads the generator and the losses, trains,
    writes checkpoints/ and samples/ under ``job.out`` and (with ``job.register`` and a style)
    registers it. Returns the final checkpoint; raises :class:`~cptr.training.jobs.JobError`."""

    device = pick_device(job.device)
    chosen = {s.strip() for s in job.levels.split(",") if s.strip()}
    if not chosen or chosen - {"coarse", "medium", "fine"}:
        raise JobError(f"--levels must be a comma list of coarse, medium, fine; got {job.levels!r}")
    if job.lambda_id > 0 and job.arcface_weights is None:
        raise JobError("the identity loss needs --arcface-weights model_ir_se50.pth (or pass --lambda-id 0)")
    prompt_name = job.name or prompt_slug(job.prompt)
    if (job.clip_weights is None) == (job.critic is None):
        raise JobError("pass --clip-weights ViT-B-32.pt (the text loss), or --critic ATTRIBUTE (the face critic's stand-in)")
    g, _ = load_source_generator(job.style, job.generator, device)
    try:
        if job.critic is not None:
            from cptr.data.critic import AttributeLoss, load_critic  # torch-heavy critic: only for --critic

            clip = AttributeLoss(load_critic(job.critic_weights, device=device), job.critic)
        else:
            clip = CLIPLoss(load_clip(job.clip_weights, device=device), job.prompt)
        idl = IDLoss(load_arcface(job.arcface_weights, device=device)) if job.lambda_id > 0 else None
    except (WeightsNotFoundError, CheckpointError, ValueError, FileNotFoundError) as e:
        raise JobError(str(e)) from None
    if job.images is not None:
        latents = invert_folder(job.images, job.style, job.encoder, g, device, None if job.quiet else log)
    else:
        latents = sample_latents(g, job.n_latents, job.truncation, job.seed)
    mapper = LevelsMapper(
        g.n_latent, g.style_dim, coarse="coarse" in chosen, medium="medium" in chosen, fine="fine" in chosen, description=job.prompt
    ).to(device)
    weights = MapperLossWeights(job.lambda_clip, job.lambda_l2, job.lambda_id)
    opts = {
        "description": job.prompt,
        "text_loss": f"critic:{job.critic}" if job.critic else "clip",
        "clip_lambda": job.lambda_clip,
        "latent_l2_lambda": job.lambda_l2,
        "id_lambda": job.lambda_id,
        "learning_rate": job.lr,
        "batch_size": job.batch,
        "max_steps": job.steps,
        "optim_name": "adam",
    }
    fixed = latents[:4].to(device)
    ckpt_dir, sample_dir = job.out / "checkpoints", job.out / "samples"

    def save(path: Path) -> None:
        save_mapper(mapper, path, opts, decoder=g if job.with_decoder else None)

    def on_step(step: int, parts: dict[str, float]) -> None:
        if job.sample_every and (step % job.sample_every == 0 or step == 1):
            mapper.eval()
            save_edit_grid(g, mapper, fixed, sample_dir / f"{step:06d}.png")
            mapper.train()
        if job.save_every and step % job.save_every == 0 and step != job.steps:
            save(ckpt_dir / f"iteration_{step}.pt")

    train_mapper(mapper, g, latents, clip, idl, weights, job.steps, job.batch, job.lr, job.seed, on_step, progress=not job.quiet)
    final = ckpt_dir / f"{prompt_name}.pt"
    save(final)
    save_edit_grid(g, mapper, fixed, sample_dir / "final.png")
    log(f"mapper written to {final}")
    if job.register and job.style is not None:
        log(register_mapper(job.style, prompt_name, final.resolve()))
    return final


def invert_folder(
    images: Path, style: str | None, encoder_path: Path | None, g: Generator, device: str, log: Callable[[str], None] | None = None
) -> torch.Tensor:
    """W+ inversions [N, n_latent, D] of every aligned face in ``images`` with the given / the style's encoder."""

    if encoder_path is None and style is not None:
        info = get_style(style)
        if info.encoder:
            encoder_path = Path(info.encoder)
        else:
            raise JobError(f"style '{style}' has no encoder; pass --encoder PATH (train one with cptr-train encoder)")
    if encoder_path is None:
        raise JobError("--images needs --encoder PATH (or --style with a registered encoder)")
    try:
        enc = load_encoder(encoder_path)
    except CheckpointError as e:
        raise JobError(str(e)) from None
    enc = enc.to(device).eval()
    if (enc.n_latent, enc.style_dim) != (g.n_latent, g.style_dim):
        raise JobError(f"the encoder predicts W+ [{enc.n_latent}, {enc.style_dim}] but the generator needs [{g.n_latent}, {g.style_dim}]")
    data = open_image_folder(images, enc.input_size)
    if log is not None:
        log(f"inverting {data.describe()}")
    out = []
    with torch.no_grad():
        for i in range(0, len(data), 8):
            x = torch.stack([data[j] for j in range(i, min(i + 8, len(data)))]).to(device)
            out.append(enc(x).cpu())
    return torch.cat(out)


def register_mapper(style: str, prompt_name: str, path: Path) -> str:
    """Add ``prompt_name -> path`` to a registered style's mappers (:func:`cptr.styles.add_mapper`); returns a message."""

    if get_style(style).builtin:
        return f"the built-in style '{style}' cannot hold mappers; register a style with: cptr styles add NAME ... --mapper {prompt_name}={path}"
    try:
        add_mapper(style, prompt_name, path)
    except StyleError as e:
        return f"not registered: {e}"
    return f"registered mapper '{prompt_name}' on style '{style}'"
