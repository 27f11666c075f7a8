"""Training configuration (from scratch and FreezeSG fine-tuning): defaults, validation, and what a
resumed run may change.

One config serves the one training loop. With ``source`` set it fine-tunes that model (FreezeSG);
without it, it trains a new generator of the architecture given by ``size``, ``channels``,
``style_dim`` and ``n_mlp`` (``cptr-train source``), with the mapping network trained too.

Defaults follow Cartoon-StyleGAN's FreezeSG example (``--freezeStyle=2 --freezeG=4 --freezeD=3
--augment --batch=8`` on a 256 px FFHQ model; see :mod:`cptr.training.freeze` for how the counts
translate) and rosinality's trainer (lr 0.002, R1 10 every 16 D steps, mixing 0.9, EMA
``0.5 ** (32 / 10000)``). Path-length regularisation is off by default, as in Cartoon-StyleGAN
whenever FreezeG is used; rosinality's weight is 2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cptr import contracts
from cptr.options import option

EMA_DECAY = 0.5 ** (32 / (10 * 1000))

# Settings that define the optimisation itself: a resumed run must keep them (or it would not
# continue the same run). Everything else (length, logging, device, data location) may change.
LOCKED = (
    "source",
    "grow_from",
    "freeze_style",
    "freeze_g",
    "freeze_d",
    "structure_loss",
    "structure_target",
    "structure_weight",
    "encoder_fraction",
    "encoder_n",
    "attribute_weight",
    "noise",
    "augment",
    "ada_target",
    "ada_length",
    "ada_every",
    "global_batch",
    "lr",
    "r1",
    "d_reg_every",
    "path_reg",
    "g_reg_every",
    "path_batch_shrink",
    "mixing",
    "ema",
    "seed",
)
# What a run does with the synthesis layers' per-pixel noise strengths (NoiseInjection.weight):
# "train" learns them (rosinality, NVlabs); "off" sets them to 0 and freezes them, for a target domain
# with no stochastic texture: flat-filled cartoons would otherwise inherit the photo model's sensor
# grain, which a photo-trained discriminator rewards at the start of a fine-tune.
NOISE_STRENGTHS = ("train", "off")


def path_option(default: str | None, help: str, commands: str = "") -> Any:
    """A file or folder option: typed as a path on the command line, kept as a plain string (checkpoints
    store the config, and their safe loader refuses pathlib objects)."""
    return option(default, help=help, commands=commands, cli_type=Path, parse=str)


# The architecture of a from-scratch run (a fine-tuning run takes it from its source).
ARCH = ("size", "channels", "style_dim", "n_mlp", "channel_multiplier")


# ``cptr-train source`` / :meth:`TrainConfig.for_source`: rosinality's train.py settings, nothing frozen,
# except R1, which suits small images lower (NVlabs' heuristic gamma = 0.0002 * size^2 / batch is far
# below 10 at 64 px), and a small default architecture that trains on a CPU.
SOURCE_DEFAULTS: dict[str, Any] = {
    "freeze_style": 0,
    "freeze_g": 0,
    "freeze_d": 0,
    "structure_loss": 0,
    "augment": "none",
    "path_reg": 2.0,
    "r1": 1.0,
    "batch": 16,
    "iters": 4000,
    "size": 64,
    "style_dim": 256,
    "n_mlp": 4,
    "channels": "128,128,64,32,32",
    "out": "runs/source",
}


def parse_channels(spec: str, size: int) -> dict[int, int]:
    """``"128,128,64,32,32"`` (widths from 4 px up to ``size``) or ``"4:128,8:128,..."`` -> {res: width}."""
    items = [t.strip() for t in spec.split(",") if t.strip()]
    n = size.bit_length() - 2  # resolutions 4 .. size
    try:
        if all(":" in t for t in items):
            out = {int(k): int(v) for k, v in (t.split(":") for t in items)}
        else:
            out = {2 ** (i + 2): int(v) for i, v in enumerate(items)}
    except ValueError:
        raise ValueError(
            f"--channels must be widths like 128,128,64,32,32 (4 px up to {size} px) or 4:128,8:128,...; got {spec!r}"
        ) from None
    want = [2**i for i in range(2, 2 + n)]
    if sorted(out) != want or any(v <= 0 for v in out.values()):
        raise ValueError(f"--channels must give one positive width for each of {want} px, got {spec!r}")
    return out


@dataclass
class TrainConfig:
    """Everything a training run needs; ``cptr-train source --help`` and ``cptr-train finetune --help``
    document each field."""

    source: str = path_option(
        "", help="Pretrained real-face model: rosinality .pt (with 'd' for FreezeD) or NVlabs .pkl.", commands="finetune"
    )
    data: str = path_option(
        "",
        help="Training images: a folder (recursive; any format Pillow reads) or an LMDB from `cptr-train render`, `cptr-train prepare` or rosinality's prepare_data.py.",
    )
    out: str = path_option("runs/finetune", help="Run folder: checkpoints/, samples/, log.csv.")
    # architecture of a from-scratch run (ignored when fine-tuning: the source defines it)
    size: int = option(0, help="Output resolution (a power of two).", commands="source")
    channels: str = option(
        "",
        help="Widths from 4 px up to --size, e.g. 512,512,512,512,256 (or 4:512,8:512,...); empty = --channel-multiplier's standard widths.",
        commands="source",
    )
    style_dim: int = option(512, help="Width of z and w.", commands="source")
    n_mlp: int = option(8, help="Layers of the mapping network.", commands="source")
    channel_multiplier: int = option(
        2, help="Standard StyleGAN2 widths (x2 = the 256 px FFHQ config) when --channels is empty.", commands="source"
    )
    grow_from: str = path_option(
        "",
        help="Start from a smaller run's checkpoint (e.g. 64 px for a 128 px run): the layers the two share start from it, the new top block from scratch.",
        commands="source",
    )
    # FreezeSG
    freeze_style: int = option(
        2,
        help="FreezeS: the first K W+ entries of the target come from the source's W+ (0 = off, plain style mixing).",
        commands="finetune",
    )
    freeze_g: int = option(
        3, help="FreezeG: freeze the synthesis layers of the N lowest resolutions (3 = 4, 8, 16 px).", commands="finetune"
    )
    freeze_d: int = option(
        3, help="FreezeD: freeze the discriminator's fromRGB and its first N (high-resolution) blocks.", commands="finetune"
    )
    structure_loss: int = option(
        0, help="Structure loss over the L lowest resolutions after 4x4 (2 = 8 and 16 px); 0 = off.", commands="finetune"
    )
    structure_target: str = option(
        "rgb",
        help="What the structure loss compares: rgb (ToRGB skip images, the paper) or features (conv outputs, the released code).",
        commands="finetune",
    )
    structure_weight: float = option(1.0, help="Weight of the structure loss.", commands="finetune")
    # Fine-tune on the encoder's own latents too: this share of each batch takes the W+ that --encoder
    # gives photos from --encoder-images (the W+ the served cartoonize path feeds the target), so the
    # target learns to draw cartoons where the encoder lands, not only where the mapping samples.
    encoder: str = path_option(
        "",
        help="Encoder weights (pSp/e4e or cptr-train encoder) whose W+ of --encoder-images the fine-tune also trains on.",
        commands="finetune",
    )
    encoder_images: str = path_option(
        "",
        help="Aligned real photos for --encoder (a folder or LMDB); the first --encoder-n are encoded once at the start.",
        commands="finetune",
    )
    encoder_fraction: float = option(
        0.0,
        help="Share of each batch drawn from the encoder's W+ instead of the mapping (0 = off): the served cartoonize path feeds the target these latents.",
        commands="finetune",
    )
    encoder_n: int = option(4000, help="Photos encoded for --encoder-fraction.", commands="finetune")
    # The face's geometry kept across the domains: a face critic reads pose, expression and face shape in photos and
    # cartoons alike (cptr-train critic trains on both renders of each face, with one label), so its reading of the
    # target's image should equal its reading of the source's image of the same W+ (critic.AttributeMatchLoss).
    attribute_critic: str = path_option(
        "",
        help="Face critic weights (cptr-train critic) for --attribute-weight: the target's images keep the pose, expression and face shape it reads in the source's images of the same latents. Use a critic apart from the one that judges the results.",
        commands="finetune",
    )
    attribute_weight: float = option(0.0, help="Weight of the --attribute-critic loss (0 = off).", commands="finetune")
    noise: str = option(
        "train",
        help="Per-pixel noise strengths: train, or off (zeroed and frozen: for flat-filled targets, which would otherwise inherit the photo model's grain).",
        commands="finetune",
    )
    # augmentation
    augment: str = option("ada", help="Discriminator augmentation: ada (adaptive, non-leaking) or none.")
    ada_target: float = option(0.6, help="ADA target for r_t = E[sign(D(real))].")
    ada_length: int = option(500_000, help="ADA speed: images for p to go from 0 to 1.", commands="finetune")
    ada_every: int = 4
    # optimisation
    iters: int = option(5000, help="Total iterations (a resumed run continues up to this).")
    batch: int = option(8, help="Batch per process (global batch = batch x processes).")
    lr: float = option(0.002, help="Adam learning rate.")
    r1: float = option(10.0, help="R1 weight (lazy, every 16 D steps); 0 = off.")
    d_reg_every: int = 16
    path_reg: float = option(0.0, help="Path-length regularisation weight (lazy, every 4 G steps); 0 = off, rosinality uses 2.")
    g_reg_every: int = 4
    path_batch_shrink: int = 2
    mixing: float = option(0.9, help="Style-mixing probability.")
    ema: float = option(EMA_DECAY, help="EMA decay of g_ema per iteration (rosinality: 0.5 ** (32 / 10000)).")
    seed: int = option(0, help="Seed of the initial weights, data order, latents, noise and augmentations.")
    # run management
    sample_every: int = option(500, help="Write a sample grid every N iterations.")
    save_every: int = option(1000, help="Write a checkpoint every N iterations (and at the end).")
    keep: int = option(3, help="Keep the newest N checkpoints (0 = all).")
    n_sample: int = option(8, help="Faces per sample grid row.")
    log_every: int = option(10, help="Log losses to log.csv every N iterations.")
    workers: int = option(4, help="Data-loading worker processes.")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).")
    quiet: bool = option(False, "--quiet", "-q", help="No progress bar or messages.")
    resume: bool = option(False, help="Continue the run in --out from its newest readable checkpoint.")
    resume_from: str | None = path_option(None, help="Continue from this checkpoint file.")
    # filled in at run time
    world_size: int = field(default=1, repr=False)

    @classmethod
    def for_source(cls, **options: Any) -> TrainConfig:
        """A from-scratch run: :data:`SOURCE_DEFAULTS` under ``options``."""
        return cls(**{**SOURCE_DEFAULTS, **options})

    @property
    def from_scratch(self) -> bool:
        """A new generator (no source model to fine-tune)."""
        return not self.source and self.size > 0

    @property
    def global_batch(self) -> int:
        return self.batch * self.world_size

    def validate(self) -> None:
        problems = []
        if not self.source and not self.resume and not self.size:
            problems.append("--source is required (a rosinality .pt or NVlabs .pkl of the real-face model)")
        if self.from_scratch:
            if not contracts.is_image_size(self.size):
                problems.append(f"--size must be a power of two >= 8, got {self.size}")
            elif self.channels:
                try:
                    parse_channels(self.channels, self.size)
                except ValueError as e:
                    problems.append(str(e))
            if self.style_dim <= 0 or self.n_mlp <= 0:
                problems.append("--style-dim and --n-mlp must be positive")
            if self.freeze_style or self.freeze_g or self.freeze_d or self.structure_loss:
                problems.append("freezing and the structure loss need a source model: a from-scratch run trains every layer")
        elif self.grow_from:
            problems.append("--grow-from starts a from-scratch run (--size) from a smaller one; a fine-tune starts from --source")
        if not 0 <= self.encoder_fraction <= 1:
            problems.append(f"--encoder-fraction must be in [0, 1], got {self.encoder_fraction}")
        if self.encoder_fraction > 0:
            if self.from_scratch:
                problems.append("--encoder-fraction fine-tunes on an encoder's latents: it needs --source")
            if not self.encoder or not self.encoder_images:
                problems.append("--encoder-fraction needs --encoder (its weights) and --encoder-images (aligned photos)")
            if self.encoder_n <= 0:
                problems.append(f"--encoder-n must be positive, got {self.encoder_n}")
        if self.attribute_weight > 0 and (self.from_scratch or not self.attribute_critic):
            problems.append(
                "--attribute-weight compares the target with its source through --attribute-critic: it needs --source and --attribute-critic"
            )
        if not self.data and not self.resume:
            problems.append("--data is required (a folder of images or an LMDB from `cptr-train prepare`)")
        if self.noise not in NOISE_STRENGTHS:
            problems.append(f"--noise must be one of {', '.join(NOISE_STRENGTHS)}, got {self.noise!r}")
        if self.structure_target not in ("rgb", "features"):
            problems.append(f"--structure-target must be rgb or features, got {self.structure_target!r}")
        if self.augment not in ("ada", "none"):
            problems.append(f"--augment must be ada or none, got {self.augment!r}")
        for name in (
            "iters",
            "batch",
            "d_reg_every",
            "g_reg_every",
            "path_batch_shrink",
            "sample_every",
            "save_every",
            "n_sample",
            "log_every",
            "ada_every",
            "ada_length",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("lr", "r1", "path_reg", "structure_weight", "attribute_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.mixing <= 1:
            problems.append(f"--mixing must be in [0, 1], got {self.mixing}")
        if not 0 <= self.ema < 1:
            problems.append(f"--ema must be in [0, 1), got {self.ema}")
        if not 0 < self.ada_target < 1:
            problems.append(f"--ada-target must be in (0, 1), got {self.ada_target}")
        if self.keep < 0 or self.workers < 0:
            problems.append("--keep and --workers must be >= 0")
        if problems:
            raise ValueError("invalid training options:\n  " + "\n  ".join(problems))

    def to_args(self) -> dict[str, Any]:
        """A plain dict for the checkpoint's ``args`` (plus the global batch)."""
        out = dataclasses.asdict(self)
        out["global_batch"] = self.global_batch
        return out

    @classmethod
    def from_args(cls, args: dict[str, Any], **overrides: Any) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        base = {k: v for k, v in args.items() if k in names}
        base.update(overrides)
        return cls(**base)


FinetuneConfig = TrainConfig  # the name the fine-tuning API has always used


def locked_differences(stored: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Locked settings in which ``cfg`` differs from a checkpoint's ``args``."""
    now = cfg.to_args()
    diffs = []
    for key in LOCKED + (ARCH if cfg.from_scratch else ()):
        if key in stored and stored[key] != now[key]:
            if key == "source":
                continue  # the source file may have moved; its weights are in the checkpoint
            diffs.append(f"{key}: checkpoint {stored[key]!r}, now {now[key]!r}")
    return diffs
