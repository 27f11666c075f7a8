"""Fine-tuning configuration: defaults, validation, and what a resumed run may change.

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
    "source", "freeze_style", "freeze_g", "freeze_d", "structure_loss", "structure_target", "structure_weight",
    "augment", "ada_target", "ada_length", "ada_every", "global_batch", "lr", "r1", "d_reg_every",
    "path_reg", "g_reg_every", "path_batch_shrink", "mixing", "ema", "seed",
)


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run needs; ``cptr-train finetune --help`` documents each field."""

    source: str = ""
    data: str = ""
    out: str = "runs/finetune"
    # FreezeSG
    freeze_style: int = 2
    freeze_g: int = 3
    freeze_d: int = 3
    structure_loss: int = 0
    structure_target: str = "rgb"
    structure_weight: float = 1.0
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

    @property
    def global_batch(self) -> int:
        return self.batch * self.world_size

    def validate(self) -> None:
        problems = []
        if not self.source and not self.resume:
            problems.append("--source is required (a rosinality .pt or NVlabs .pkl of the real-face model)")
        if not self.data and not self.resume:
            problems.append("--data is required (a folder of images or an LMDB from `cptr-train prepare`)")
        if self.structure_target not in ("rgb", "features"):
            problems.append(f"--structure-target must be rgb or features, got {self.structure_target!r}")
        if self.augment not in ("ada", "none"):
            problems.append(f"--augment must be ada or none, got {self.augment!r}")
        for name in ("iters", "batch", "d_reg_every", "g_reg_every", "path_batch_shrink", "sample_every", "save_every", "n_sample", "log_every", "ada_every", "ada_length"):
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
            raise ValueError("invalid fine-tuning options:\n  " + "\n  ".join(problems))

    def to_args(self) -> dict[str, Any]:
        """A plain dict for the checkpoint's ``args`` (plus the global batch)."""
        out = dataclasses.asdict(self)
        out["global_batch"] = self.global_batch
        return out

    @classmethod
    def from_args(cls, args: dict[str, Any], **overrides: Any) -> FinetuneConfig:
        names = {f.name for f in fields(cls)}
        base = {k: v for k, v in args.items() if k in names}
        base.update(overrides)
        return cls(**base)


def locked_differences(stored: dict[str, Any], cfg: FinetuneConfig) -> list[str]:
    """Locked settings in which ``cfg`` differs from a checkpoint's ``args``."""
    now = cfg.to_args()
    diffs = []
    for key in LOCKED:
        if key in stored and stored[key] != now[key]:
            if key == "source":
                continue  # the source file may have moved; its weights are in the checkpoint
            diffs.append(f"{key}: checkpoint {stored[key]!r}, now {now[key]!r}")
    return diffs
