"""``cptr-train source``, ``cptr-train finetune`` and ``cptr-train prepare``.

Training options default to ``None`` here and fall back to :class:`~cptr.training.config.TrainConfig`'s defaults, so a
resumed run can tell an option the user typed (checked against the checkpoint) from one left out
(taken from the checkpoint).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from cptr.options import parsed, typer_parameters
from cptr.training.config import SOURCE_DEFAULTS, TrainConfig

_DEFAULTS = {"source": SOURCE_DEFAULTS, "finetune": {}}  # over TrainConfig's defaults


def _options(command: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command that takes ``**options`` the option fields of :class:`TrainConfig` that it takes,
    each defaulting to None, "not typed" (see the module docstring); --out is required."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        defaults = {**_DEFAULTS[command], "out": ...}
        fn.__signature__ = inspect.Signature(typer_parameters(TrainConfig, command, defaults=defaults, unset=True))  # type: ignore[attr-defined]
        return fn

    return decorate


@_options("finetune")
def finetune(**options: Any) -> None:
    """Fine-tune a real-face StyleGAN2 on cartoons with FreezeSG (+ optional structure loss).

    Examples:

      cptr-train finetune --source ffhq256.pt --data cartoons/ --out runs/webtoon

      cptr-train finetune --source ffhq256.pt --data cartoons.lmdb \\
          --out runs/webtoon-sl --freeze-g 0 --structure-loss 2

      cptr-train finetune --out runs/webtoon --resume --iters 20000

      torchrun --nproc_per_node 4 -m cptr.training finetune --source ffhq256.pt \\
          --data cartoons.lmdb --out runs/webtoon --batch 4

    The result loads anywhere a generator does: `cptr styles add webtoon --source ffhq256.pt --target runs/webtoon/checkpoints/005000.pt`.
    """
    _run(options, _DEFAULTS["finetune"])


def _run(options: dict, defaults: dict) -> None:
    """Build the config from the options the user typed (over ``defaults``, or over the checkpoint's
    settings when resuming) and run the one training loop; errors become a one-line message, exit 2."""
    from cptr.models.checkpoints import CheckpointError  # torch: only when this runs (the module is imported without it)
    from cptr.training.checkpointing import (
        latest_checkpoint,
        load_checkpoint,
    )  # torch: only when this runs (the module is imported without it)
    from cptr.training.data import DatasetError  # torch: only when this runs (the module is imported without it)
    from cptr.training.finetune import train  # torch: only when this runs (the module is imported without it)

    out, resume, resume_from = options["out"], options["resume"], options["resume_from"]
    # checkpoints store plain strings (the fields' parse): the safe loader refuses pathlib objects
    given = {k: v for k, v in parsed(TrainConfig, options).items() if v is not None}
    try:
        if resume or resume_from:
            found = (Path(resume_from), load_checkpoint(resume_from)) if resume_from else latest_checkpoint(out, warn=lambda m: None)
            stored = dict(found[1]["args"]) if found else {}
            stored.pop("resume", None)
            stored.pop("resume_from", None)
            cfg = TrainConfig.from_args(stored, **given)
        else:
            cfg = TrainConfig(**{**defaults, **given})
        cfg.validate()
        train(cfg, log=lambda m: typer.echo(m, err=True))
    except (ValueError, FileNotFoundError, CheckpointError, DatasetError, FloatingPointError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@_options("source")
def source(**options: Any) -> None:
    """Train a StyleGAN2 from scratch (the source, real-face model of the method).

    rosinality's train.py semantics: non-saturating logistic loss, lazy R1, path-length
    regularisation, style mixing, EMA, optional ADA. It is the same loop as `finetune`, with nothing
    frozen. Checkpoints are rosinality .pt files (g, d, g_ema, optimisers, latent_avg, args) that
    `finetune --source`, `load_generator` and `cptr styles add` read.

    Examples:

      cptr-train render --domain photo --n 20000 --size 64 --out data/photo

      cptr-train source --data data/photo --out runs/source

      cptr-train source --data ffhq.lmdb --out runs/ffhq256 --size 256 \\
          --channels "" --style-dim 512 --n-mlp 8 --channel-multiplier 2 --r1 10 \\
          --augment ada --iters 200000

      cptr-train source --out runs/source --resume --iters 8000

      torchrun --nproc_per_node 4 -m cptr.training source --data data/photo \\
          --out runs/source --batch 4
    """
    _run(options, _DEFAULTS["source"])


def prepare(
    images: Path = typer.Argument(..., help="Folder of images (recursive)."),
    out: Path = typer.Option(..., "--out", help="LMDB folder to write (replaced atomically)."),
    size: list[int] = typer.Option([256], "--size", help="Resolution(s) to store; repeat for several."),
    quality: int = typer.Option(100, min=1, max=100, help="JPEG quality."),
    workers: int = typer.Option(8, "--workers", min=1, help="Threads decoding and resizing images."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Write a rosinality-format LMDB dataset (keys `length` and `{size}-{index:05d}`).

    Example: cptr-train prepare cartoons/ --out data/cartoons.lmdb --size 256
    """
    from cptr.training.data import DatasetError, write_lmdb  # torch: only when this runs (the module is imported without it)

    try:
        n, skipped = write_lmdb(images, out, sizes=tuple(size), quality=quality, workers=workers, progress=not quiet)
    except DatasetError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not quiet:
        typer.echo(
            f"wrote {n} images to {out} (sizes {', '.join(map(str, size))})"
            + (f"; skipped {skipped} unreadable file(s)" if skipped else "")
        )
