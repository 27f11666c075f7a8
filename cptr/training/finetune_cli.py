"""``cptr-train source``, ``cptr-train finetune`` and ``cptr-train prepare``.

Training options default to ``None`` here and fall back to :class:`~cptr.training.config.TrainConfig`'s defaults, so a
resumed run can tell an option the user typed (checked against the checkpoint) from one left out
(taken from the checkpoint).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from cptr.training.config import SOURCE_DEFAULTS, TrainConfig

# Every option of `cptr-train source` and `cptr-train finetune`, in --help order:
# (name, type, flags, help, the commands that take it, space-separated). Each defaults to None, "not typed" (see the
# module docstring); --help shows the command's own default. --out is required.
_OPTIONS: tuple[tuple[str, type, tuple[str, ...], str, str], ...] = (
    ("source", Path, ("--source",), "Pretrained real-face model: rosinality .pt (with 'd' for FreezeD) or NVlabs .pkl.", "finetune"),
    (
        "data",
        Path,
        ("--data",),
        "Training images: a folder (recursive; any format Pillow reads) or an LMDB from `cptr-train render`, `cptr-train prepare` or rosinality's prepare_data.py.",
        "source finetune",
    ),
    ("out", Path, ("--out",), "Run folder: checkpoints/, samples/, log.csv.", "source finetune"),
    ("size", int, ("--size",), "Output resolution (a power of two).", "source"),
    (
        "channels",
        str,
        ("--channels",),
        "Widths from 4 px up to --size, e.g. 512,512,512,512,256 (or 4:512,8:512,...); empty = --channel-multiplier's standard widths.",
        "source",
    ),
    (
        "channel_multiplier",
        int,
        ("--channel-multiplier",),
        "Standard StyleGAN2 widths (x2 = the 256 px FFHQ config) when --channels is empty.",
        "source",
    ),
    (
        "grow_from",
        Path,
        ("--grow-from",),
        "Start from a smaller run's checkpoint (e.g. 64 px for a 128 px run): the layers the two share start from it, the new top block from scratch.",
        "source",
    ),
    ("style_dim", int, ("--style-dim",), "Width of z and w.", "source"),
    ("n_mlp", int, ("--n-mlp",), "Layers of the mapping network.", "source"),
    (
        "freeze_style",
        int,
        ("--freeze-style",),
        "FreezeS: the first K W+ entries of the target come from the source's W+ (0 = off, plain style mixing).",
        "finetune",
    ),
    ("freeze_g", int, ("--freeze-g",), "FreezeG: freeze the synthesis layers of the N lowest resolutions (3 = 4, 8, 16 px).", "finetune"),
    ("freeze_d", int, ("--freeze-d",), "FreezeD: freeze the discriminator's fromRGB and its first N (high-resolution) blocks.", "finetune"),
    (
        "structure_loss",
        int,
        ("--structure-loss",),
        "Structure loss over the L lowest resolutions after 4x4 (2 = 8 and 16 px); 0 = off.",
        "finetune",
    ),
    (
        "structure_target",
        str,
        ("--structure-target",),
        "What the structure loss compares: rgb (ToRGB skip images, the paper) or features (conv outputs, the released code).",
        "finetune",
    ),
    ("structure_weight", float, ("--structure-weight",), "Weight of the structure loss.", "finetune"),
    (
        "encoder",
        Path,
        ("--encoder",),
        "Encoder weights (pSp/e4e or cptr-train encoder) whose W+ of --encoder-images the fine-tune also trains on.",
        "finetune",
    ),
    (
        "encoder_images",
        Path,
        ("--encoder-images",),
        "Aligned real photos for --encoder (a folder or LMDB); the first --encoder-n are encoded once at the start.",
        "finetune",
    ),
    (
        "encoder_fraction",
        float,
        ("--encoder-fraction",),
        "Share of each batch drawn from the encoder's W+ instead of the mapping (0 = off): the served cartoonize path feeds the target these latents.",
        "finetune",
    ),
    ("encoder_n", int, ("--encoder-n",), "Photos encoded for --encoder-fraction.", "finetune"),
    (
        "noise",
        str,
        ("--noise",),
        "Per-pixel noise strengths: train, or off (zeroed and frozen: for flat-filled targets, which would otherwise inherit the photo model's grain).",
        "finetune",
    ),
    ("augment", str, ("--augment",), "Discriminator augmentation: ada (adaptive, non-leaking) or none.", "source finetune"),
    ("ada_target", float, ("--ada-target",), "ADA target for r_t = E[sign(D(real))].", "source finetune"),
    ("ada_length", int, ("--ada-length",), "ADA speed: images for p to go from 0 to 1.", "finetune"),
    ("iters", int, ("--iters",), "Total iterations (a resumed run continues up to this).", "source finetune"),
    ("batch", int, ("--batch",), "Batch per process (global batch = batch x processes).", "source finetune"),
    ("lr", float, ("--lr",), "Adam learning rate.", "source finetune"),
    ("r1", float, ("--r1",), "R1 weight (lazy, every 16 D steps); 0 = off.", "source finetune"),
    (
        "path_reg",
        float,
        ("--path-reg",),
        "Path-length regularisation weight (lazy, every 4 G steps); 0 = off, rosinality uses 2.",
        "source finetune",
    ),
    ("mixing", float, ("--mixing",), "Style-mixing probability.", "source finetune"),
    ("ema", float, ("--ema",), "EMA decay of g_ema per iteration (rosinality: 0.5 ** (32 / 10000)).", "source finetune"),
    ("seed", int, ("--seed",), "Seed of the initial weights, data order, latents, noise and augmentations.", "source finetune"),
    ("resume", bool, ("--resume",), "Continue the run in --out from its newest readable checkpoint.", "source finetune"),
    ("resume_from", Path, ("--resume-from",), "Continue from this checkpoint file.", "source finetune"),
    ("sample_every", int, ("--sample-every",), "Write a sample grid every N iterations.", "source finetune"),
    ("save_every", int, ("--save-every",), "Write a checkpoint every N iterations (and at the end).", "source finetune"),
    ("keep", int, ("--keep",), "Keep the newest N checkpoints (0 = all).", "source finetune"),
    ("n_sample", int, ("--n-sample",), "Faces per sample grid row.", "source finetune"),
    ("log_every", int, ("--log-every",), "Log losses to log.csv every N iterations.", "source finetune"),
    ("workers", int, ("--workers",), "Data-loading worker processes.", "source finetune"),
    ("device", str, ("--device",), "auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).", "source finetune"),
    ("quiet", bool, ("--quiet", "-q"), "No progress bar or messages.", "source finetune"),
)
_DEFAULTS = {"source": SOURCE_DEFAULTS, "finetune": {}}  # over TrainConfig's defaults


def _options(command: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command that takes ``**options`` its rows of :data:`_OPTIONS` as Typer options."""
    defaults = {**asdict(TrainConfig()), **_DEFAULTS[command]}

    def option(name: str, kind: type, flags: tuple[str, ...], text: str) -> inspect.Parameter:
        if kind is bool:
            return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(False, *flags, help=text))
        if kind is not Path:  # escaped: Rich would take [default: ...] as markup
            text = f"{text} \\[default: {defaults[name]}]"
        required = name == "out"
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=kind if required else kind | None,
            default=typer.Option(... if required else None, *flags, help=text),
        )

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        fn.__signature__ = inspect.Signature([option(*row[:4]) for row in _OPTIONS if command in row[4].split()])  # type: ignore[attr-defined]
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
    given = {k: v for k, v in options.items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    for name, kind, *_ in _OPTIONS:  # checkpoints store plain strings: the safe loader refuses pathlib objects
        if kind is Path and name in given:
            given[name] = str(given[name])
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
