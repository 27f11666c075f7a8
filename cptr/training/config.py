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
from typing import Any

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

    source: str = ""
    data: str = ""
    out: str = "runs/finetune"
    # architecture of a from-scratch run (ignored when fine-tuning: the source defines it)
    size: int = 0
    channels: str = ""  # "" = channel_multiplier's standard widths
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    grow_from: str = ""  # a from-scratch run may start its shared blocks from a smaller run's checkpoint
    # FreezeSG
    freeze_style: int = 2
    freeze_g: int = 3
    freeze_d: int = 3
    structure_loss: int = 0
    structure_target: str = "rgb"
    structure_weight: float = 1.0
    # Fine-tune on the encoder's own latents too: this share of each batch takes the W+ that --encoder
    # gives photos from --encoder-images (the W+ the served cartoonize path feeds the target), so the
    # target learns to draw cartoons where the encoder lands, not only where the mapping samples.
    encoder: str = ""
    encoder_images: str = ""
    encoder_fraction: float = 0.0
    encoder_n: int = 4000
    noise: str = "train"  # per-pixel noise strengths: train (rosinality) or off (zeroed and frozen)
    # augmentation
    augment: str = "ada"
    ada_target: float = 0.6
    ada_length: int = 500_000
    ada_every: int = 4
    # optimisation
    iters: int = 5000
    batch: int = 8  # per process
    lr: float = 0.002
    r1: float = 10.0
    d_reg_every: int = 16
    path_reg: float = 0.0
    g_reg_every: int = 4
    path_batch_shrink: int = 2
    mixing: float = 0.9
    ema: float = EMA_DECAY
    seed: int = 0
    # run management
    sample_every: int = 500
    save_every: int = 1000
    keep: int = 3
    n_sample: int = 8
    log_every: int = 10
    workers: int = 4
    device: str = "auto"
    quiet: bool = False
    resume: bool = False
    resume_from: str | None = None
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
            if self.size < 8 or self.size & (self.size - 1):
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
        for name in ("lr", "r1", "path_reg", "structure_weight"):
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
