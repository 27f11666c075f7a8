"""``cptr-train mapper``: options in, :func:`cptr.training.mapper_train.run_mapper_job` out.

Only typer and the options shared in :mod:`cptr.training.job_cli` are imported at module level
(``cptr-train --help`` stays fast); the job's set-up and training live in :mod:`cptr.training.mapper_train`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.training.job_cli import Batch, Device, LambdaId, LambdaL2, LearningRate, Out, Seed, Steps, run_job

MAPPER_EXAMPLES = """Examples:

  cptr-train mapper --style webtoon --prompt "a really angry face" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth --out runs/angry

  cptr-train mapper --generator ffhq256.pt --prompt "a smiling face" --name smile --clip-weights ViT-B-32.pt --lambda-id 0 --steps 2000

  cptr-train mapper --style webtoon --images aligned_faces/ --prompt "surprised" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth

  cptr-train mapper --generator runs/source.pt --prompt "a smiling face" --name smile --critic smile --lambda-id 0 --steps 600
"""


def mapper_command(
    prompt: str = typer.Option(..., "--prompt", help="Text the edit should move towards, e.g. 'a really angry face'."),
    style: str | None = typer.Option(None, "--style", help="Registered style whose source generator is edited."),
    generator: Path | None = typer.Option(
        None, "--generator", help="Generator checkpoint (rosinality .pt / NVlabs .pkl) instead of --style."
    ),
    clip_weights: Path | None = typer.Option(
        None, "--clip-weights", help="OpenAI CLIP ViT-B-32.pt (TorchScript or state dict); read without running code."
    ),
    critic: str | None = typer.Option(
        None,
        "--critic",
        help="Stand-in for CLIP when its weights are absent: raise this attribute of the shipped face critic (smile, yaw, hair_color, ...) instead of the text loss.",
    ),
    critic_weights: Path | None = typer.Option(
        None, "--critic-weights", help="Face critic weights for --critic (default: the shipped cptr/assets/demo/critic.pt)."
    ),
    arcface_weights: Path | None = typer.Option(
        None, "--arcface-weights", help="model_ir_se50.pth for the identity loss (needed when --lambda-id > 0)."
    ),
    name: str | None = typer.Option(None, "--name", help="Prompt name in the registry and file names (default: from the prompt)."),
    out: Out = Path("runs/mapper"),
    images: Path | None = typer.Option(
        None, "--images", help="Folder of aligned faces: train on their encoder inversions instead of sampled latents."
    ),
    encoder: Path | None = typer.Option(None, "--encoder", help="Encoder checkpoint for --images (default: the style's encoder)."),
    lambda_clip: float = typer.Option(1.0, "--lambda-clip", min=0.0),
    lambda_l2: LambdaL2 = 0.8,
    lambda_id: LambdaId = 0.1,
    steps: Steps = 10000,
    batch: Batch = 2,
    lr: LearningRate = 0.5,
    n_latents: int = typer.Option(5000, "--n-latents", min=1, help="Sampled training latents (without --images)."),
    truncation: float = typer.Option(0.7, "--truncation", min=0.0, max=1.0),
    levels: str = typer.Option("coarse,medium,fine", "--levels", help="Mapper levels to train (comma list)."),
    sample_every: int = typer.Option(500, "--sample-every", min=0, help="Write a before/after grid every N steps (0: never)."),
    save_every: int = typer.Option(2000, "--save-every", min=0, help="Write a checkpoint every N steps (0: only at the end)."),
    with_decoder: bool = typer.Option(
        False, "--with-decoder", help="Also store the generator as 'decoder.*' (StyleCLIP's own code needs it)."
    ),
    register: bool = typer.Option(True, "--register/--no-register", help="Add the mapper to --style in the registry."),
    seed: Seed = 0,
    device: Device = "auto",
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a StyleCLIP levels mapper for a text prompt (CLIP + latent L2 + ArcFace identity losses)."""
    from cptr.training.mapper_train import MapperJob, run_mapper_job  # torch: only when this runs (the module is imported without it)

    job = MapperJob(
        prompt=prompt,
        style=style,
        generator=generator,
        clip_weights=clip_weights,
        critic=critic,
        critic_weights=critic_weights,
        arcface_weights=arcface_weights,
        name=name,
        out=out,
        images=images,
        encoder=encoder,
        lambda_clip=lambda_clip,
        lambda_l2=lambda_l2,
        lambda_id=lambda_id,
        steps=steps,
        batch=batch,
        lr=lr,
        n_latents=n_latents,
        truncation=truncation,
        levels=levels,
        sample_every=sample_every,
        save_every=save_every,
        with_decoder=with_decoder,
        register=register,
        seed=seed,
        device=device,
        quiet=quiet,
    )
    run_job(run_mapper_job, job)


MAPPER_HELP = f"{mapper_command.__doc__}\n\n{MAPPER_EXAMPLES}"
