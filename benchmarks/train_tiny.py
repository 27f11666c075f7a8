"""Fine-tuning throughput of the tiny test configuration (32 px, TINY widths, style_dim 64, n_mlp 2).

Builds a seeded tiny source model (with its discriminator) and 16 synthetic images in a temporary
folder, runs ``cptr.training.finetune`` with every training feature on (FreezeSG, structure loss,
ADA, lazy R1 and path length, EMA), and prints iterations/s after the warm-up iterations.

    .venv/bin/python benchmarks/train_tiny.py --iters 60 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cptr.models import Discriminator, Generator  # noqa: E402
from cptr.models.checkpoints import save_generator  # noqa: E402
from cptr.training.config import FinetuneConfig  # noqa: E402
from cptr.training.finetune import finetune  # noqa: E402
from cptr.training.monitor import read_log  # noqa: E402

TINY_CHANNELS = {4: 32, 8: 32, 16: 16, 32: 16, 64: 8}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10, help="iterations left out of the rate")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
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
            freeze_style=2,
            freeze_g=2,
            freeze_d=1,
            structure_loss=2,
            path_reg=2.0,
            iters=a.iters,
            batch=a.batch,
            log_every=a.warmup,
            save_every=a.iters,
            sample_every=a.iters,
            workers=0,
            device=a.device,
            quiet=True,
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
    main()
