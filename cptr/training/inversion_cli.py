"""``cptr-train mapper`` and ``cptr-train encoder``: text-edit mappers and image -> W+ encoders.

Only typer is imported at module level (``cptr-train --help`` stays fast); the training code in
:mod:`cptr.training.mapper_train` and :mod:`cptr.training.encoder_train` loads inside the commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

MAPPER_EXAMPLES = """Examples:

  cptr-train mapper --style webtoon --prompt "a really angry face" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth --out runs/angry

  cptr-train mapper --generator ffhq256.pt --prompt "a smiling face" --name smile --clip-weights ViT-B-32.pt --lambda-id 0 --steps 2000

  cptr-train mapper --style webtoon --images aligned_faces/ --prompt "surprised" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth

  cptr-train mapper --generator runs/source.pt --prompt "a smiling face" --name smile --critic smile --lambda-id 0 --steps 600
"""

ENCODER_EXAMPLES = """Examples:

  cptr-train encoder --style webtoon --out runs/encoder --steps 20000

  cptr-train encoder --generator ffhq256.pt --images aligned_faces/ --arcface-weights model_ir_se50.pth --width full

  cptr-train encoder --style demo --width small --steps 300 --out runs/demo_encoder
"""


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", err=True, fg="red")
    raise typer.Exit(2)


def load_source_generator(style: str | None, generator: Path | None, device: str) -> tuple[Any, Any]:
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
    """Add ``prompt_name -> path`` to a registered style's mappers (:func:`cptr.styles.add_mapper`); returns a message."""
    from cptr.styles import StyleError, add_mapper, get_style

    if get_style(style).builtin:
        return f"the built-in style '{style}' cannot hold mappers; register a style with: cptr styles add NAME ... --mapper {prompt_name}={path}"
    try:
        add_mapper(style, prompt_name, path)
    except StyleError as e:
        return f"not registered: {e}"
    return f"registered mapper '{prompt_name}' on style '{style}'"


def mapper_command(
    prompt: str = typer.Option(..., "--prompt", help="Text the edit should move towards, e.g. 'a really angry face'."),
    style: str | None = typer.Option(None, "--style", help="Registered style whose source generator is edited."),
    generator: Path | None = typer.Option(None, "--generator", help="Generator checkpoint (rosinality .pt / NVlabs .pkl) instead of --style."),
    clip_weights: Path | None = typer.Option(None, "--clip-weights", help="OpenAI CLIP ViT-B-32.pt (TorchScript or state dict); read without running code."),
    critic: str | None = typer.Option(None, "--critic", help="Stand-in for CLIP when its weights are absent: raise this attribute of the shipped face critic (smile, yaw, hair_color, ...) instead of the text loss."),
    critic_weights: Path | None = typer.Option(None, "--critic-weights", help="Face critic weights for --critic (default: the shipped cptr/assets/demo/critic.pt)."),
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
    device: str = typer.Option("auto", "--device", help="'auto' (CUDA when available), 'cpu' or 'cuda[:N]'."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a StyleCLIP levels mapper for a text prompt (CLIP + latent L2 + ArcFace identity losses)."""
    from cptr.checkpoints import CheckpointError
    from cptr.models.arcface import IDLoss, load_arcface
    from cptr.models.clip_loss import CLIPLoss
    from cptr.models.clip_shim import WeightsNotFoundError, load_clip
    from cptr.models.mapper import LevelsMapper, save_mapper
    from cptr.training.mapper_train import MapperLossWeights, prompt_slug, sample_latents, save_edit_grid, train_mapper

    device = _device(device)

    chosen = {s.strip() for s in levels.split(",") if s.strip()}
    if not chosen or chosen - {"coarse", "medium", "fine"}:
        _fail(f"--levels must be a comma list of coarse, medium, fine; got {levels!r}")
    if lambda_id > 0 and arcface_weights is None:
        _fail("the identity loss needs --arcface-weights model_ir_se50.pth (or pass --lambda-id 0)")
    prompt_name = name or prompt_slug(prompt)
    if (clip_weights is None) == (critic is None):
        _fail("pass --clip-weights ViT-B-32.pt (the text loss), or --critic ATTRIBUTE (the face critic's stand-in)")
    g, info = load_source_generator(style, generator, device)
    try:
        if critic is not None:
            from cptr.data.critic import AttributeLoss, load_critic

            clip = AttributeLoss(load_critic(critic_weights, device=device), critic)
        else:
            clip = CLIPLoss(load_clip(clip_weights, device=device), prompt)
        idl = IDLoss(load_arcface(arcface_weights, device=device)) if lambda_id > 0 else None
    except (WeightsNotFoundError, CheckpointError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if images is not None:
        latents = invert_folder(images, style, encoder, g, device, quiet)
    else:
        latents = sample_latents(g, n_latents, truncation, seed)
    mapper = LevelsMapper(g.n_latent, g.style_dim, coarse="coarse" in chosen, medium="medium" in chosen, fine="fine" in chosen, description=prompt).to(device)
    weights = MapperLossWeights(lambda_clip, lambda_l2, lambda_id)
    opts = {"description": prompt, "text_loss": f"critic:{critic}" if critic else "clip", "clip_lambda": lambda_clip, "latent_l2_lambda": lambda_l2, "id_lambda": lambda_id,
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


def invert_folder(images: Path, style: str | None, encoder_path: Path | None, g: Any, device: str, quiet: bool) -> Any:
    """W+ inversions [N, n_latent, D] of every aligned face in ``images`` with the given / the style's encoder."""
    import torch

    from cptr.checkpoints import CheckpointError
    from cptr.models.encoder import load_encoder
    from cptr.training.data import DatasetError, ImageFolderDataset

    if encoder_path is None and style is not None:
        from cptr.styles import get_style

        info = get_style(style)
        if info.encoder:
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


def encoder_command(
    style: str | None = typer.Option(None, "--style", help="Registered style whose source generator the encoder inverts."),
    generator: Path | None = typer.Option(None, "--generator", help="Generator checkpoint instead of --style."),
    out: Path = typer.Option(Path("runs/encoder"), "--out", help="Output folder: checkpoints/, samples/."),
    width: str = typer.Option("full", "--width", help="'full' (pSp's IR-SE50 GradualStyleEncoder) or 'small' (one unit per stage)."),
    work_size: int = typer.Option(256, "--work-size", help="Resolution the encoder's backbone works at: the 256 px aligned crop is area-pooled to it (smaller = faster, for small generators)."),
    head: str = typer.Option("psp", "--head", help="'psp' (independent W+ entries) or 'e4e' (one w plus deltas)."),
    images: Path | None = typer.Option(None, "--images", help="Folder of aligned real faces for extra pixel/identity losses."),
    arcface_weights: Path | None = typer.Option(None, "--arcface-weights", help="model_ir_se50.pth: adds the identity loss."),
    lambda_latent: float = typer.Option(1.0, "--lambda-latent", min=0.0),
    lambda_l2: float = typer.Option(1.0, "--lambda-l2", min=0.0),
    lambda_l1: float = typer.Option(0.0, "--lambda-l1", min=0.0),
    lambda_id: float = typer.Option(0.1, "--lambda-id", min=0.0),
    steps: int = typer.Option(20000, "--steps", min=1),
    batch: int = typer.Option(8, "--batch", min=1),
    lr: float = typer.Option(1e-4, "--lr", min=0.0),
    sample_every: int = typer.Option(1000, "--sample-every", min=0),
    save_every: int = typer.Option(5000, "--save-every", min=0),
    register: bool = typer.Option(True, "--register/--no-register", help="Set the trained encoder on --style in the registry."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="'auto' (CUDA when available), 'cpu' or 'cuda[:N]'."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train an image -> W+ encoder on the generator's own samples (latent + pixel [+ identity] losses)."""
    import torch

    from cptr.checkpoints import CheckpointError
    from cptr.contracts import ALIGNED_SIZE
    from cptr.models.arcface import IDLoss, load_arcface
    from cptr.models.clip_shim import WeightsNotFoundError
    from cptr.models.encoder import Encoder, save_encoder, small_encoder_config
    from cptr.training.encoder_train import (
        EncoderLossWeights,
        generator_mean_latent,
        reconstruction_error,
        sample_training_latents,
        save_reconstruction_grid,
        train_encoder,
    )

    device = _device(device)

    if width not in ("full", "small"):
        _fail(f"--width must be 'full' or 'small', got {width!r}")
    if head not in ("psp", "e4e"):
        _fail(f"--head must be 'psp' or 'e4e', got {head!r}")
    g, info = load_source_generator(style, generator, device)
    idl = None
    if arcface_weights is not None and lambda_id > 0:
        try:
            idl = IDLoss(load_arcface(arcface_weights, device=device))
        except (WeightsNotFoundError, CheckpointError) as e:
            _fail(str(e))
    if width == "full":
        cfg = {"n_latent": g.n_latent, "style_dim": g.style_dim, "input_size": ALIGNED_SIZE, "head": head}
    else:
        cfg = {**small_encoder_config(g.n_latent, g.style_dim, ALIGNED_SIZE), "head": head}
    if work_size < 32 or work_size > ALIGNED_SIZE or ALIGNED_SIZE % work_size:
        _fail(f"--work-size must divide the {ALIGNED_SIZE} px aligned crop and be >= 32 (e.g. 64, 128, 256), got {work_size}")
    cfg["pool"] = ALIGNED_SIZE // work_size
    enc = Encoder(**cfg, latent_avg=generator_mean_latent(g, seed).cpu()).to(device)
    real = None
    if images is not None:
        real = _endless_batches(images, ALIGNED_SIZE, batch, seed)
    weights = EncoderLossWeights(lambda_latent, lambda_l2, lambda_l1, lambda_id)
    opts = {"batch_size": batch, "learning_rate": lr, "max_steps": steps, "l2_lambda": lambda_l2, "id_lambda": lambda_id,
            "w_lambda": lambda_latent, "lpips_lambda": 0.0}
    ckpt_dir, sample_dir = out / "checkpoints", out / "samples"
    gen = torch.Generator().manual_seed(seed + 99)
    fixed = sample_training_latents(g, 4, gen, generator_mean_latent(g, seed).to(device))

    def on_step(step: int, parts: dict[str, float]) -> None:
        if sample_every and (step % sample_every == 0 or step == 1):
            save_reconstruction_grid(enc, g, fixed, sample_dir / f"{step:06d}.png")
            enc.train()
        if save_every and step % save_every == 0 and step != steps:
            save_encoder(enc, ckpt_dir / f"iteration_{step}.pt", opts)

    train_encoder(enc, g, steps, batch, lr, weights, idl, real, seed, on_step, progress=not quiet)
    final = ckpt_dir / "encoder.pt"
    save_encoder(enc, final, opts)
    save_reconstruction_grid(enc, g, fixed, sample_dir / "final.png")
    rec, base = reconstruction_error(enc, g)
    typer.echo(f"encoder written to {final}; reconstruction MSE {rec:.4f} (average latent: {base:.4f})")
    if register and style is not None and info is not None and not info.builtin:
        from cptr.styles import StyleError, set_encoder

        try:
            set_encoder(info.name, final.resolve())
            typer.echo(f"registered the encoder on style '{style}'")
        except StyleError as e:
            typer.echo(f"not registered: {e}")


def _endless_batches(root: Path, size: int, batch: int, seed: int) -> Iterator[Any]:
    import torch

    from cptr.training.data import DatasetError, ImageFolderDataset

    try:
        data = ImageFolderDataset(root, size)
    except DatasetError as e:
        _fail(str(e))
    gen = torch.Generator().manual_seed(seed)
    while True:
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        yield torch.stack([data[int(i)] for i in idx])


def _examples_help(command: Any, examples: str) -> str:
    return f"{command.__doc__}\n\n{examples}"


MAPPER_HELP = _examples_help(mapper_command, MAPPER_EXAMPLES)
ENCODER_HELP = _examples_help(encoder_command, ENCODER_EXAMPLES)
