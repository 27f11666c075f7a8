"""Fine-tuning throughput of the tiny test configuration (32 px, TINY widths, style_dim 64, n_mlp 2).

Builds a seeded tiny source model (with its discriminator) and 16 synthetic images in a temporary
folder, runs ``cptr.training.finetune`` with every training feature on (FreezeSG, structure loss,
ADA, lazy R1 and path length, EMA), and prints iterations/s after the warm-up iterations.

    .venv/bin/python benchmarks/train_tiny.py --iters 60 --threads 1
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cptr import contracts  # noqa: E402
from cptr.models import Discriminator, Generator  # noqa: E402
from cptr.models.checkpoints import save_generator  # noqa: E402
from cptr.options import option, script_app  # noqa: E402
from cptr.training.config import FinetuneConfig  # noqa: E402
from cptr.training.finetune import finetune  # noqa: E402
from cptr.training.monitor import read_log  # noqa: E402
from tests.tiny import IN_PROCESS, TINY_CHANNELS, TINY_FREEZESG  # noqa: E402  (the tests' tiny configuration)


def tiny_size(size: int) -> int:
    """``size`` if TINY_CHANNELS has widths up to it (a power of two, 8 to 64); else a ValueError naming ``--size``."""
    if not contracts.is_image_size(size) or size > max(TINY_CHANNELS):
        raise ValueError(f"--size must be a power of two from 8 to {max(TINY_CHANNELS)} (the tiny widths), got {size}")
    return size


@dataclass
class TrainTinyOptions:
    """The options of ``benchmarks/train_tiny.py`` (each field one option: :mod:`cptr.options`)."""

    iters: int = option(60, min=1, help="Fine-tuning iterations.")
    warmup: int = option(10, min=1, help="Iterations left out of the rate (the log's first row).")
    batch: int = option(4, min=1, help="Images per iteration.")
    size: int = option(32, parse=tiny_size, help=f"Image size: a power of two from 8 to {max(TINY_CHANNELS)}.")
    threads: int = option(1, min=1, help="Torch threads (torch.set_num_threads).")
    device: str = option("cpu", help="Torch device to train on (cpu, cuda, cuda:1, ...).")


def main(a: TrainTinyOptions) -> None:
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        g = Generator(a.size, style_dim=64, n_mlp=2, channels=TINY_CHANNELS)
        d = Discriminator(a.size, channels=TINY_CHANNELS)
        save_generator(g, root / "source.pt", extra={"d": d.state_dict()})
        rng = np.random.default_rng(0)
        (root / "images").mkdir()
        for i in range(16):
            Image.fromarray(rng.integers(0, 256, (a.size, a.size, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        cfg = FinetuneConfig(
            source=str(root / "source.pt"),
            data=str(root / "images"),
            out=str(root / "run"),
            **TINY_FREEZESG,
            iters=a.iters,
            batch=a.batch,
            log_every=a.warmup,
            save_every=a.iters,
            sample_every=a.iters,
            **dict(IN_PROCESS, device=a.device),
        )
        t0 = time.perf_counter()
        res = finetune(cfg)
        wall = time.perf_counter() - t0
        rows = read_log(root / "run" / "log.csv")
        steady = [r["sec_per_iter"] for r in rows[1:]]
        rate = 1 / (sum(steady) / len(steady)) if steady else res.iters_per_second
        print(
            f"size {a.size}, batch {a.batch}, threads {a.threads}: {rate:.2f} it/s after {a.warmup} warm-up iterations "
            f"({res.iters_per_second:.2f} it/s overall, {wall:.1f}s wall incl. setup)"
        )


if __name__ == "__main__":
    script_app(TrainTinyOptions, main, __doc__)(prog_name="python benchmarks/train_tiny.py")
