"""``cptr-train encoder``: options in, :func:`cptr.training.encoder_train.run_encoder_job` out.

Only typer and the options shared in :mod:`cptr.training.job_cli` are imported at module level
(``cptr-train --help`` stays fast); the job's set-up and training live in :mod:`cptr.training.encoder_train`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.training.job_cli import Batch, Device, LambdaId, LambdaL2, LearningRate, Out, Seed, Steps, run_job

ENCODER_EXAMPLES = """Examples:

  cptr-train encoder --style webtoon --out runs/encoder --steps 20000

  cptr-train encoder --generator ffhq256.pt --images aligned_faces/ --arcface-weights model_ir_se50.pth --width full

  cptr-train encoder --style demo --width small --steps 300 --out runs/demo_encoder
"""


def encoder_command(
    style: str | None = typer.Option(None, "--style", help="Registered style whose source generator the encoder inverts."),
    generator: Path | None = typer.Option(None, "--generator", help="Generator checkpoint instead of --style."),
    out: Out = Path("runs/encoder"),
    width: str = typer.Option("full", "--width", help="'full' (pSp's IR-SE50 GradualStyleEncoder) or 'small' (one unit per stage)."),
    work_size: int = typer.Option(
        256,
        "--work-size",
        help="Resolution the encoder's backbone works at: the 256 px aligned crop is area-pooled to it (smaller = faster, for small generators).",
    ),
    head: str = typer.Option("psp", "--head", help="'psp' (independent W+ entries) or 'e4e' (one w plus deltas)."),
    images: Path | None = typer.Option(None, "--images", help="Folder of aligned real faces for extra pixel/identity losses."),
    arcface_weights: Path | None = typer.Option(None, "--arcface-weights", help="model_ir_se50.pth: adds the identity loss."),
    perceptual_weights: Path | None = typer.Option(
        None,
        "--perceptual-weights",
        help="A face critic's weights (cptr-train critic) whose features give an LPIPS-style loss, in place of pSp's LPIPS term. Use one trained apart from the critic that judges the results (--render-seed).",
    ),
    lambda_latent: float = typer.Option(1.0, "--lambda-latent", min=0.0),
    lambda_l2: LambdaL2 = 1.0,
    lambda_l1: float = typer.Option(0.0, "--lambda-l1", min=0.0),
    lambda_id: LambdaId = 0.1,
    lambda_perceptual: float = typer.Option(
        0.8, "--lambda-perceptual", min=0.0, help="Weight of the --perceptual-weights loss (pSp's LPIPS lambda)."
    ),
    steps: Steps = 20000,
    batch: Batch = 8,
    lr: LearningRate = 1e-4,
    sample_every: int = typer.Option(1000, "--sample-every", min=0),
    save_every: int = typer.Option(5000, "--save-every", min=0),
    register: bool = typer.Option(True, "--register/--no-register", help="Set the trained encoder on --style in the registry."),
    seed: Seed = 0,
    device: Device = "auto",
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train an image -> W+ encoder on the generator's own samples (latent + pixel [+ identity, perceptual] losses)."""
    from cptr.training.encoder_train import EncoderJob, run_encoder_job  # torch: only when this runs (the module is imported without it)

    job = EncoderJob(
        style=style,
        generator=generator,
        out=out,
        width=width,
        work_size=work_size,
        head=head,
        images=images,
        arcface_weights=arcface_weights,
        perceptual_weights=perceptual_weights,
        lambda_latent=lambda_latent,
        lambda_l2=lambda_l2,
        lambda_l1=lambda_l1,
        lambda_id=lambda_id,
        lambda_perceptual=lambda_perceptual,
        steps=steps,
        batch=batch,
        lr=lr,
        sample_every=sample_every,
        save_every=save_every,
        register=register,
        seed=seed,
        device=device,
        quiet=quiet,
    )
    run_job(run_encoder_job, job)


ENCODER_HELP = f"{encoder_command.__doc__}\n\n{ENCODER_EXAMPLES}"
