"""``cptr-train source``, ``cptr-train finetune`` and ``cptr-train prepare``.

Training options default to ``None`` here and fall back to :class:`FinetuneConfig`'s defaults, so a
resumed run can tell an option the user typed (checked against the checkpoint) from one left out
(taken from the checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cptr.training.config import SOURCE_DEFAULTS, TrainConfig

_D = TrainConfig()


def _h(text: str, name: str) -> str:
    return f"{text} \\[default: {getattr(_D, name)}]"  # escaped: Rich would take [default: ...] as markup


def finetune(
    source: Optional[Path] = typer.Option(None, "--source", help="Pretrained real-face model: rosinality .pt (with 'd' for FreezeD) or NVlabs .pkl."),
    data: Optional[Path] = typer.Option(None, "--data", help="Training images: a folder (recursive; any format Pillow reads) or an LMDB from `cptr-train prepare` / rosinality prepare_data.py."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints/, samples/, log.csv."),
    freeze_style: Optional[int] = typer.Option(None, "--freeze-style", help=_h("FreezeS: the first K W+ entries of the target come from the source's W+ (0 = off, plain style mixing).", "freeze_style")),
    freeze_g: Optional[int] = typer.Option(None, "--freeze-g", help=_h("FreezeG: freeze the synthesis layers of the N lowest resolutions (3 = 4, 8, 16 px).", "freeze_g")),
    freeze_d: Optional[int] = typer.Option(None, "--freeze-d", help=_h("FreezeD: freeze the discriminator's fromRGB and its first N (high-resolution) blocks.", "freeze_d")),
    structure_loss: Optional[int] = typer.Option(None, "--structure-loss", help=_h("Structure loss over the L lowest resolutions after 4x4 (2 = 8 and 16 px); 0 = off.", "structure_loss")),
    structure_target: Optional[str] = typer.Option(None, "--structure-target", help=_h("What the structure loss compares: rgb (ToRGB skip images, the paper) or features (conv outputs, the released code).", "structure_target")),
    structure_weight: Optional[float] = typer.Option(None, "--structure-weight", help=_h("Weight of the structure loss.", "structure_weight")),
    noise: Optional[str] = typer.Option(None, "--noise", help=_h("Per-pixel noise strengths: train, or off (zeroed and frozen: for flat-filled targets, which would otherwise inherit the photo model's grain).", "noise")),
    augment: Optional[str] = typer.Option(None, "--augment", help=_h("Discriminator augmentation: ada (adaptive, non-leaking) or none.", "augment")),
    ada_target: Optional[float] = typer.Option(None, "--ada-target", help=_h("ADA target for r_t = E[sign(D(real))].", "ada_target")),
    ada_length: Optional[int] = typer.Option(None, "--ada-length", help=_h("ADA speed: images for p to go from 0 to 1.", "ada_length")),
    iters: Optional[int] = typer.Option(None, "--iters", help=_h("Total iterations (a resumed run continues up to this).", "iters")),
    batch: Optional[int] = typer.Option(None, "--batch", help=_h("Batch per process (global batch = batch x processes).", "batch")),
    lr: Optional[float] = typer.Option(None, "--lr", help=_h("Adam learning rate.", "lr")),
    r1: Optional[float] = typer.Option(None, "--r1", help=_h("R1 weight (lazy, every 16 D steps); 0 = off.", "r1")),
    path_reg: Optional[float] = typer.Option(None, "--path-reg", help=_h("Path-length regularisation weight (lazy, every 4 G steps); rosinality uses 2.", "path_reg")),
    mixing: Optional[float] = typer.Option(None, "--mixing", help=_h("Style-mixing probability.", "mixing")),
    ema: Optional[float] = typer.Option(None, "--ema", help=_h("EMA decay of g_ema per iteration (rosinality: 0.5 ** (32 / 10000)).", "ema")),
    seed: Optional[int] = typer.Option(None, "--seed", help=_h("Seed of the data order, latents, noise and augmentations.", "seed")),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest readable checkpoint."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", help="Continue from this checkpoint file."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", help=_h("Write a sample grid every N iterations.", "sample_every")),
    save_every: Optional[int] = typer.Option(None, "--save-every", help=_h("Write a checkpoint every N iterations (and at the end).", "save_every")),
    keep: Optional[int] = typer.Option(None, "--keep", help=_h("Keep the newest N checkpoints (0 = all).", "keep")),
    n_sample: Optional[int] = typer.Option(None, "--n-sample", help=_h("Faces per sample grid row.", "n_sample")),
    log_every: Optional[int] = typer.Option(None, "--log-every", help=_h("Log losses to log.csv every N iterations.", "log_every")),
    workers: Optional[int] = typer.Option(None, "--workers", help=_h("Data-loading worker processes.", "workers")),
    device: Optional[str] = typer.Option(None, "--device", help=_h("auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).", "device")),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """Fine-tune a real-face StyleGAN2 on cartoons with FreezeSG (+ optional structure loss).

    Examples:

      cptr-train finetune --source ffhq256.pt --data cartoons/ --out runs/webtoon

      cptr-train finetune --source ffhq256.pt --data cartoons.lmdb --out runs/webtoon-sl --freeze-g 0 --structure-loss 2

      cptr-train finetune --out runs/webtoon --resume --iters 20000

      torchrun --nproc_per_node 4 -m cptr.training finetune --source ffhq256.pt --data cartoons.lmdb --out runs/webtoon --batch 4

    The result loads anywhere a generator does: `cptr styles add webtoon --source ffhq256.pt --target runs/webtoon/checkpoints/005000.pt`.
    """
    _run(locals(), {}, out, resume, resume_from)


def _run(options: dict, defaults: dict, out: Path, resume: bool, resume_from: Path | None) -> None:
    """Build the config from the options the user typed (over ``defaults``, or over the checkpoint's
    settings when resuming) and run the one training loop; errors become a one-line message, exit 2."""
    from cptr.models.checkpoints import CheckpointError
    from cptr.training.checkpointing import latest_checkpoint, load_checkpoint
    from cptr.training.data import DatasetError
    from cptr.training.finetune import train

    given = {k: v for k, v in options.items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    for k in ("source", "data", "out", "resume_from"):
        if k in given:
            given[k] = str(given[k])
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


def _s(text: str, name: str) -> str:
    return f"{text} \\[default: {SOURCE_DEFAULTS.get(name, getattr(_D, name))}]"


def source(
    data: Optional[Path] = typer.Option(None, "--data", help="Training images: a folder, or an LMDB (`cptr-train render` or `cptr-train prepare`)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints/, samples/, log.csv."),
    size: Optional[int] = typer.Option(None, "--size", help=_s("Output resolution (a power of two).", "size")),
    channels: Optional[str] = typer.Option(None, "--channels", help=_s("Widths from 4 px up to --size, e.g. 512,512,512,512,256 (or 4:512,8:512,...); empty = --channel-multiplier's standard widths.", "channels")),
    channel_multiplier: Optional[int] = typer.Option(None, "--channel-multiplier", help=_s("Standard StyleGAN2 widths (x2 = the 256 px FFHQ config) when --channels is empty.", "channel_multiplier")),
    style_dim: Optional[int] = typer.Option(None, "--style-dim", help=_s("Width of z and w.", "style_dim")),
    n_mlp: Optional[int] = typer.Option(None, "--n-mlp", help=_s("Layers of the mapping network.", "n_mlp")),
    augment: Optional[str] = typer.Option(None, "--augment", help=_s("Discriminator augmentation: ada (adaptive, non-leaking) or none.", "augment")),
    ada_target: Optional[float] = typer.Option(None, "--ada-target", help=_s("ADA target for r_t = E[sign(D(real))].", "ada_target")),
    iters: Optional[int] = typer.Option(None, "--iters", help=_s("Total iterations (a resumed run continues up to this).", "iters")),
    batch: Optional[int] = typer.Option(None, "--batch", help=_s("Batch per process (global batch = batch x processes).", "batch")),
    lr: Optional[float] = typer.Option(None, "--lr", help=_s("Adam learning rate.", "lr")),
    r1: Optional[float] = typer.Option(None, "--r1", help=_s("R1 weight (lazy, every 16 D steps); 0 = off.", "r1")),
    path_reg: Optional[float] = typer.Option(None, "--path-reg", help=_s("Path-length regularisation weight (lazy, every 4 G steps); 0 = off.", "path_reg")),
    mixing: Optional[float] = typer.Option(None, "--mixing", help=_s("Style-mixing probability.", "mixing")),
    ema: Optional[float] = typer.Option(None, "--ema", help=_s("EMA decay of g_ema per iteration.", "ema")),
    seed: Optional[int] = typer.Option(None, "--seed", help=_s("Seed of the initial weights, data order, latents, noise and augmentations.", "seed")),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest readable checkpoint."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", help="Continue from this checkpoint file."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", help=_s("Write a sample grid every N iterations.", "sample_every")),
    save_every: Optional[int] = typer.Option(None, "--save-every", help=_s("Write a checkpoint every N iterations (and at the end).", "save_every")),
    keep: Optional[int] = typer.Option(None, "--keep", help=_s("Keep the newest N checkpoints (0 = all).", "keep")),
    n_sample: Optional[int] = typer.Option(None, "--n-sample", help=_s("Faces per sample grid row.", "n_sample")),
    log_every: Optional[int] = typer.Option(None, "--log-every", help=_s("Log losses to log.csv every N iterations.", "log_every")),
    workers: Optional[int] = typer.Option(None, "--workers", help=_s("Data-loading worker processes.", "workers")),
    device: Optional[str] = typer.Option(None, "--device", help=_s("auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).", "device")),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """Train a StyleGAN2 from scratch (the source, real-face model of the method).

    rosinality's train.py semantics: non-saturating logistic loss, lazy R1, path-length
    regularisation, style mixing, EMA, optional ADA. It is the same loop as `finetune`, with nothing
    frozen. Checkpoints are rosinality .pt files (g, d, g_ema, optimisers, latent_avg, args) that
    `finetune --source`, `load_generator` and `cptr styles add` read.

    Examples:

      cptr-train render --domain photo --n 20000 --size 64 --out data/photo

      cptr-train source --data data/photo --out runs/source

      cptr-train source --data ffhq.lmdb --out runs/ffhq256 --size 256 --channels "" --style-dim 512 --n-mlp 8 --channel-multiplier 2 --r1 10 --augment ada --iters 200000

      cptr-train source --out runs/source --resume --iters 8000

      torchrun --nproc_per_node 4 -m cptr.training source --data data/photo --out runs/source --batch 4
    """
    _run(locals(), SOURCE_DEFAULTS, out, resume, resume_from)


def prepare(
    images: Path = typer.Argument(..., help="Folder of images (recursive)."),
    out: Path = typer.Option(..., "--out", help="LMDB folder to write (replaced atomically)."),
    size: list[int] = typer.Option([256], "--size", help="Resolution(s) to store; repeat for several."),
    quality: int = typer.Option(100, min=1, max=100, help="JPEG quality."),
    workers: int = typer.Option(8, min=1, help="Decoding threads."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a rosinality-format LMDB dataset (keys `length` and `{size}-{index:05d}`).

    Example: cptr-train prepare cartoons/ --out data/cartoons.lmdb --size 256
    """
    from cptr.training.data import DatasetError, write_lmdb

    try:
        n, skipped = write_lmdb(images, out, sizes=tuple(size), quality=quality, workers=workers, progress=not quiet)
    except DatasetError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not quiet:
        typer.echo(f"wrote {n} images to {out} (sizes {', '.join(map(str, size))})" + (f"; skipped {skipped} unreadable file(s)" if skipped else ""))
