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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cptr.models.mapper import LevelsMapper, save_mapper
from cptr.models.stylegan2 import Generator


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
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="mapper", unit="step")
    for step in range(steps):
        idx = torch.randint(0, latents.shape[0], (batch,), generator=gen)
        w = latents[idx].to(next(mapper.parameters()).device)
        loss, parts, _ = mapper_loss(mapper, g, w, clip_loss, id_loss, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(parts)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in parts.items()})
        if callback is not None:
            callback(step + 1, parts)
    if bar is not None:
        bar.close()
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


# --------------------------------------------------------------------------- CLI

import typer  # noqa: E402

EXAMPLES = """Examples:

  cptr-train mapper --style webtoon --prompt "a really angry face" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth --out runs/angry

  cptr-train mapper --generator ffhq256.pt --prompt "a smiling face" --name smile --clip-weights ViT-B-32.pt --lambda-id 0 --steps 2000

  cptr-train mapper --style webtoon --images aligned_faces/ --prompt "surprised" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth
"""


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", err=True, fg="red")
    raise typer.Exit(2)


def load_source_generator(style: str | None, generator: Path | None, device: str) -> tuple[Generator, Any]:
    """The generator a mapper/encoder trains against: ``--generator`` or the style's source."""
    from cptr.checkpoints import CheckpointError, load_generator

    if (style is None) == (generator is None):
        _fail("pass exactly one of --style NAME and --generator PATH")
    if generator is not None:
        try:
            return load_generator(generator, device=device), None
        except CheckpointError as e:
            _fail(str(e))
    from cptr.styles import StyleError, get_style, load_style_generators

    try:
        info = get_style(style)
        source, _ = load_style_generators(style, device=device)
    except StyleError as e:
        _fail(str(e))
    return source, info


def register_mapper(style: str, prompt_name: str, path: Path) -> str:
    """Add ``prompt_name -> path`` to a registered style's mappers; returns a message."""
    from cptr.styles import StyleError, add_style, get_style

    info = get_style(style)
    if info.builtin:
        return f"the built-in style '{style}' cannot hold mappers; register a style with: cptr styles add NAME ... --mapper {prompt_name}={path}"
    try:
        add_style(
            info.name, info.source, info.target, alpha=info.alpha, swap_res=info.swap_res, blend_width=info.blend_width,
            inject_k=info.inject_k, encoder=info.encoder, mappers={**info.mappers, prompt_name: str(path)},
            description=info.description, replace=True,
        )
    except StyleError as e:
        return f"not registered: {e}"
    return f"registered mapper '{prompt_name}' on style '{style}'"


def mapper_command(
    prompt: str = typer.Option(..., "--prompt", help="Text the edit should move towards, e.g. 'a really angry face'."),
    style: str | None = typer.Option(None, "--style", help="Registered style whose source generator is edited."),
    generator: Path | None = typer.Option(None, "--generator", help="Generator checkpoint (rosinality .pt / NVlabs .pkl) instead of --style."),
    clip_weights: Path = typer.Option(..., "--clip-weights", help="OpenAI CLIP ViT-B-32.pt (TorchScript or state dict); read without running code."),
    arcface_weights: Path | None = typer.Option(None, "--arcface-weights", help="model_ir_se50.pth for the identity loss (needed when --lambda-id > 0)."),
    name: str | None = typer.Option(None, "--name", help="Prompt name in the registry and file names (default: from the prompt)."),
    out: Path = typer.Option(Path("runs/mapper"), "--out", help="Output folder: checkpoints/, samples/."),
    images: Path | None = typer.Option(None, "--images", help="Folder of aligned faces: train on their encoder inversions instead of sampled latents."),
    encoder: Path | None = typer.Option(None, "--encoder", help="Encoder checkpoint for --images (default: the style's encoder)."),
    lambda_clip: float = typer.Option(1.0, "--lambda-clip", min=0.0),
    lambda_l2: float = typer.Option(0.8, "--lambda-l2", min=0.0),
    lambda_id: float = typer.Option(0.1, "--lambda-id", min=0.0),
    steps: int = typer.Option(10000, "--steps", min=1),
    batch: int = typer.Option(2, "--batch", min=1),
    lr: float = typer.Option(0.5, "--lr", min=0.0),
    n_latents: int = typer.Option(5000, "--n-latents", min=1, help="Sampled training latents (without --images)."),
    truncation: float = typer.Option(0.7, "--truncation", min=0.0, max=1.0),
    levels: str = typer.Option("coarse,medium,fine", "--levels", help="Mapper levels to train (comma list)."),
    sample_every: int = typer.Option(500, "--sample-every", min=0, help="Write a before/after grid every N steps (0: never)."),
    save_every: int = typer.Option(2000, "--save-every", min=0, help="Write a checkpoint every N steps (0: only at the end)."),
    with_decoder: bool = typer.Option(False, "--with-decoder", help="Also store the generator as 'decoder.*' (StyleCLIP's own code needs it)."),
    register: bool = typer.Option(True, "--register/--no-register", help="Add the mapper to --style in the registry."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cuda" if torch.cuda.is_available() else "cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a StyleCLIP levels mapper for a text prompt (CLIP + latent L2 + ArcFace identity losses)."""
    from cptr.checkpoints import CheckpointError
    from cptr.models.arcface import IDLoss, load_arcface
    from cptr.models.clip_loss import CLIPLoss
    from cptr.models.clip_shim import WeightsNotFoundError, load_clip

    chosen = {s.strip() for s in levels.split(",") if s.strip()}
    if not chosen or chosen - {"coarse", "medium", "fine"}:
        _fail(f"--levels must be a comma list of coarse, medium, fine; got {levels!r}")
    if lambda_id > 0 and arcface_weights is None:
        _fail("the identity loss needs --arcface-weights model_ir_se50.pth (or pass --lambda-id 0)")
    prompt_name = name or prompt_slug(prompt)
    g, info = load_source_generator(style, generator, device)
    try:
        clip = CLIPLoss(load_clip(clip_weights, device=device), prompt)
        idl = IDLoss(load_arcface(arcface_weights, device=device)) if lambda_id > 0 else None
    except (WeightsNotFoundError, CheckpointError, ValueError) as e:
        _fail(str(e))
    if images is not None:
        latents = invert_folder(images, style, encoder, g, device, quiet)
    else:
        latents = sample_latents(g, n_latents, truncation, seed)
    mapper = LevelsMapper(g.n_latent, g.style_dim, coarse="coarse" in chosen, medium="medium" in chosen, fine="fine" in chosen, description=prompt).to(device)
    weights = MapperLossWeights(lambda_clip, lambda_l2, lambda_id)
    opts = {"description": prompt, "clip_lambda": lambda_clip, "latent_l2_lambda": lambda_l2, "id_lambda": lambda_id,
            "learning_rate": lr, "batch_size": batch, "max_steps": steps, "optim_name": "adam"}
    fixed = latents[:4].to(device)
    ckpt_dir, sample_dir = out / "checkpoints", out / "samples"

    def save(path: Path) -> None:
        save_mapper(mapper, path, opts, decoder=g if with_decoder else None)

    def on_step(step: int, parts: dict[str, float]) -> None:
        if sample_every and (step % sample_every == 0 or step == 1):
            mapper.eval()
            save_edit_grid(g, mapper, fixed, sample_dir / f"{step:06d}.png")
            mapper.train()
        if save_every and step % save_every == 0 and step != steps:
            save(ckpt_dir / f"iteration_{step}.pt")

    train_mapper(mapper, g, latents, clip, idl, weights, steps, batch, lr, seed, on_step, progress=not quiet)
    final = ckpt_dir / f"{prompt_name}.pt"
    save(final)
    save_edit_grid(g, mapper, fixed, sample_dir / "final.png")
    typer.echo(f"mapper written to {final}")
    if register and style is not None:
        typer.echo(register_mapper(style, prompt_name, final.resolve()))


def invert_folder(images: Path, style: str | None, encoder_path: Path | None, g: Generator, device: str, quiet: bool) -> torch.Tensor:
    """W+ inversions of every aligned face in ``images`` with the given / the style's encoder."""
    from cptr.checkpoints import CheckpointError
    from cptr.models.encoder import load_encoder
    from cptr.training.data import DatasetError, ImageFolderDataset

    if encoder_path is None and style is not None:
        from cptr.styles import get_style

        info = get_style(style)
        if info.builtin:
            from cptr.training.encoder_train import demo_encoder

            enc = demo_encoder()
        elif info.encoder:
            encoder_path = Path(info.encoder)
        else:
            _fail(f"style '{style}' has no encoder; pass --encoder PATH (train one with cptr-train encoder)")
    if encoder_path is not None:
        try:
            enc = load_encoder(encoder_path)
        except CheckpointError as e:
            _fail(str(e))
    elif style is None:
        _fail("--images needs --encoder PATH (or --style with a registered encoder)")
    enc = enc.to(device).eval()
    if (enc.n_latent, enc.style_dim) != (g.n_latent, g.style_dim):
        _fail(f"the encoder predicts W+ [{enc.n_latent}, {enc.style_dim}] but the generator needs [{g.n_latent}, {g.style_dim}]")
    try:
        data = ImageFolderDataset(images, enc.input_size)
    except DatasetError as e:
        _fail(str(e))
    if not quiet:
        typer.echo(f"inverting {data.describe()}")
    out = []
    with torch.no_grad():
        for i in range(0, len(data), 8):
            x = torch.stack([data[j] for j in range(i, min(i + 8, len(data)))]).to(device)
            out.append(enc(x).cpu())
    return torch.cat(out)


def main() -> None:  # pragma: no cover - standalone entry until cptr.training.cli registers the command
    app = typer.Typer(add_completion=False)
    app.command("mapper", help=f"{mapper_command.__doc__}\n\n{EXAMPLES}")(mapper_command)
    app()


__all__ = ["MapperLossWeights", "mapper_command", "mapper_loss", "sample_latents", "train_mapper"]
