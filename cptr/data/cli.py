"""``cptr-train render``: procedural-face data sets (registered on the ``cptr-train`` app)."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.data.metrics import FaceDetector
from cptr.data.render import write_renders
from cptr.progress import StepProgress


def render(
    domain: str = typer.Option(
        ..., "--domain", help="photo (shaded, textured, soft focus) or cartoon (flat fills, ink outlines, big eyes)."
    ),
    n: int = typer.Option(..., "--n", min=1, help="Number of faces."),
    out: Path = typer.Option(..., "--out", help="Folder of PNGs, or an LMDB when the name ends in .lmdb (replaced atomically)."),
    size: int = typer.Option(64, "--size", min=16, max=1024, help="Side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Face i is the face of seed SEED + i (the same face in both domains)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Processes [default: one per CPU]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    align: bool = typer.Option(
        False,
        "--align",
        help="FFHQ-align every face as the server aligns photos (rendered at 256 px, then cropped to --size); faces the detector misses are left out.",
    ),
) -> None:
    """Render a labelled data set of procedural faces (no download): the data CPTR's demo models train on.

    Examples:

      cptr-train render --domain photo --n 20000 --size 64 --out data/photo

      cptr-train render --domain cartoon --n 20000 --out data/cartoon.lmdb

      cptr-train render --domain photo --n 20000 --align --out data/aligned

    Each image comes with its attributes (yaw, roll, skin tone, hair colour, smile, ...) in labels.csv.
    """

    try:
        res = write_renders(out, domain, n, size=size, seed=seed, workers=workers, progress=not quiet, align=align)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not quiet:
        aligned = f", FFHQ-aligned; {n - res.count} without a detected face left out" if align else ""
        typer.echo(f"wrote {res.count} {domain} faces ({size} px, seeds {seed}..{seed + n - 1}{aligned}) to {res.path}")


def critic(
    out: Path = typer.Option(Path("cptr/assets/demo/critic.pt"), "--out", help="Where to write the weights (a plain state dict)."),
    n: int = typer.Option(8000, "--n", min=100, help="Faces rendered per domain for training."),
    steps: int = typer.Option(2000, "--steps", min=1, help="Optimiser steps."),
    batch: int = typer.Option(32, "--batch", min=2, help="Batch size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and the batches."),
    render_seed: int | None = typer.Option(
        None,
        "--render-seed",
        min=0,
        help="First render seed of the training faces (seeds render_seed .. render_seed + n - 1; default: the shipped critic's range). Another range (and --seed) trains a second critic apart from the shipped one, e.g. the encoder's perceptual network.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the face critic (domain classifier, attribute regressor, FID feature network) on renders.

    The package ships its result as cptr/assets/demo/critic.pt; this command remakes it.

    Example:

      cptr-train critic --out cptr/assets/demo/critic.pt
    """
    from cptr.data.critic import (
        CRITIC_RENDER_SEED,
        evaluate_critic,
        save_critic,
        train_critic,
    )  # torch: only when this runs (the module is imported without it)

    with StepProgress(steps, "critic", enabled=not quiet) as prog:
        net = train_critic(
            n=n,
            steps=steps,
            batch=batch,
            seed=seed,
            progress=prog.step,
            render_seed=CRITIC_RENDER_SEED if render_seed is None else render_seed,
        )
    save_critic(net, out)
    report = evaluate_critic(net)
    typer.echo(f"wrote {out}; held-out: {report.summary()}")


def evaluate(
    generator: Path | None = typer.Option(None, "--generator", "-g", help="Generator checkpoint (rosinality .pt / NVlabs .pkl)."),
    images: Path | None = typer.Option(None, "--images", help="Instead of a generator: a folder of images to score."),
    data: Path = typer.Option(..., "--data", help="Reference data set (folder or LMDB) with at least 2 x --n images."),
    n: int = typer.Option(500, "--n", min=10, help="Samples per set."),
    truncation: float = typer.Option(1.0, "--truncation", help="Truncation psi of the generator's samples."),
    inception: Path | None = typer.Option(
        None, "--inception", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth: standard FID features (else the face critic's)."
    ),
    critic_path: Path | None = typer.Option(
        None, "--critic", help="Face critic weights [default: the shipped cptr/assets/demo/critic.pt]."
    ),
    faces: bool = typer.Option(True, "--faces/--no-faces", help="Count mediapipe face detections."),
    out: Path | None = typer.Option(None, "--out", help="Write the report as JSON here."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latents."),
    grid_path: Path | None = typer.Option(
        None,
        "--grid",
        help="With --generator: also write a PNG grid of its first 16 samples (as scored: same latents, truncation and noise).",
    ),
    noise_mode: str = typer.Option(
        "const",
        "--noise-mode",
        help="Per-pixel noise of the samples, as NVlabs' noise_mode: const (the stored maps), random (fresh maps) or none (zeros).",
    ),
    structure_source: Path | None = typer.Option(
        None,
        "--structure-source",
        help="With --generator (a fine-tuned target): its source generator. Adds the structure kept, source(W) vs target(W), judged by mediapipe's face mesh, beside its ceiling (the renderer's photo/cartoon pairs) and floor (pairs shuffled).",
    ),
    aligned: bool = typer.Option(
        True,
        "--aligned/--raw",
        help="With --structure-source: the ceiling's renders FFHQ-aligned (models trained on `render --align` data) or as rendered.",
    ),
) -> None:
    """Score a generator: FID/KID against a data set, mediapipe face rate, the critic's domain verdict.

    With --generator, two baselines are scored beside it: an untrained generator of the same
    architecture, and the data set against itself (other images of it).

    Examples:

      cptr-train eval -g runs/source/checkpoints/004000.pt --data data/photo \\
          --truncation 0.7

      cptr-train eval --images samples/ --data data/photo \\
          --inception pt_inception-2015-12-05-6726825d.pth --out report.json

      cptr-train eval -g runs/cartoon/checkpoints/000600.pt \\
          --structure-source runs/source/shipped.pt --data data/cartoon \\
          --truncation 0.7
    """
    from cptr.data.critic import load_critic  # torch: only when this runs (the module is imported without it)
    from cptr.data.evaluate import (
        critic_features,
        evaluate_images,
        evaluate_with_baselines,
        inception_features,
        load_images,
        write_report,
    )  # torch: only when this runs (the module is imported without it)
    from cptr.models.checkpoints import CheckpointError  # torch: only when this runs (the module is imported without it)

    if (generator is None) == (images is None):
        typer.echo("error: give exactly one of --generator and --images", err=True)
        raise typer.Exit(2)
    try:
        crit = load_critic(critic_path)
        if generator is not None:
            rows = evaluate_with_baselines(generator, data, n, truncation, inception, crit, faces, seed, noise_mode, grid_path)
            if grid_path is not None:
                typer.echo(f"wrote {grid_path}")
        else:
            probe = load_images(images, n, 64)
            size = probe.shape[-1]
            feats, fname = (inception_features(inception), "inception") if inception else (critic_features(crit), "critic")
            ref = feats(load_images(data, n, size))
            rows = [evaluate_images(str(images), load_images(images, n, size), ref, feats, fname, crit, FaceDetector() if faces else None)]
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for r in rows:
        typer.echo(r.summary())
    extra: dict = {}
    if structure_source is not None:
        if generator is None:
            typer.echo("error: --structure-source needs --generator (the fine-tuned target)", err=True)
            raise typer.Exit(2)
        from cptr.data.structure import FEATURES, generator_structure  # torch: only when this runs (the module is imported without it)
        from cptr.models.checkpoints import load_generator  # torch: only when this runs (the module is imported without it)

        try:
            judged = generator_structure(load_generator(structure_source), load_generator(generator), n, truncation, seed, aligned=aligned)
        except (ValueError, FileNotFoundError, CheckpointError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        extra["structure_mesh"] = judged.as_dict()
        ratio = judged.ratios()
        for label, rep in (
            ("structure (face mesh) source(W) vs target(W)", judged.measured),
            ("  ceiling: renderer's photo vs cartoon", judged.ceiling),
            ("  floor: pairs shuffled", judged.floor),
        ):
            cells = ", ".join(
                f"{f} {rep.corr[f]:.3f}" + (f" ({ratio[f]:.0%} of ceiling)" if rep is judged.measured else "") for f in FEATURES
            )
            typer.echo(f"{label}: {cells}; n={rep.n_pairs}")
    if out is not None:
        write_report(
            rows,
            out,
            {
                "generator": str(generator) if generator else None,
                "data": str(data),
                "truncation": truncation,
                "noise_mode": noise_mode,
                **extra,
            },
        )
        typer.echo(f"wrote {out}")
