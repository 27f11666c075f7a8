"""Time one StyleGAN2 training step (discriminator + generator) with the modulated convs fused
(one grouped conv with per-sample weights) against their shared-weight form, in interleaved rounds.

    .venv/bin/python benchmarks/train_step.py                 # the demo recipe: 64 px, 128,128,64,32,32
    .venv/bin/python benchmarks/train_step.py --size 256 --channels 512,512,512,256,128,64,32

Both forms compute the same function; the script prints their largest output difference beside the times.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cptr import contracts  # noqa: E402
from cptr.models.stylegan2 import Discriminator, Generator, set_fused_modconv  # noqa: E402
from cptr.options import option, script_app  # noqa: E402
from cptr.training.config import parse_channels  # noqa: E402
from cptr.training.losses import d_logistic_loss, g_nonsaturating_loss  # noqa: E402


@dataclass
class TrainStepOptions:
    """The options of ``benchmarks/train_step.py`` (each field one option: :mod:`cptr.options`)."""

    size: int = option(64, min=8, help="Image size of G and D (a power of two).")
    channels: str = option("128,128,64,32,32", help="Widths from 4 px up to --size (or 4:128,8:128,...), as cptr-train takes them.")
    style_dim: int = option(256, min=1, help="Style (W) dimension.")
    n_mlp: int = option(4, min=1, help="Layers of the mapping network.")
    batch: int = option(16, min=1, help="Images per training step.")
    rounds: int = option(5, min=1, help="Interleaved rounds (fused, then shared weight); the median is reported.")
    steps: int = option(3, min=1, help="Steps per engine per round.")

    def __post_init__(self) -> None:  # a bad size or width list is a usage error, before any model is built
        if not contracts.is_image_size(self.size):
            raise ValueError(f"--size must be a power of two >= 8, got {self.size}")
        parse_channels(self.channels, self.size)


def main(a: TrainStepOptions) -> None:
    torch.manual_seed(0)
    g = Generator(a.size, style_dim=a.style_dim, n_mlp=a.n_mlp, channels=parse_channels(a.channels, a.size))
    d = Discriminator(a.size, channels=g.channels)
    real = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
    z = torch.randn(a.batch, a.style_dim)

    def step() -> None:
        with torch.no_grad():
            fake, _ = g([z])
        d.zero_grad(set_to_none=True)
        d_logistic_loss(d(real), d(fake)).backward()
        g.zero_grad(set_to_none=True)
        img, _ = g([z])
        g_nonsaturating_loss(d(img)).backward()

    with torch.no_grad():
        outs = {}
        for fused in (True, False):
            set_fused_modconv(g, fused)
            outs[fused] = g([z], randomize_noise=False)[0]
    err = (outs[True] - outs[False]).abs().max().item()

    times: dict[bool, list[float]] = {True: [], False: []}
    for fused in (True, False):  # warm-up
        set_fused_modconv(g, fused)
        step()
    for _ in range(a.rounds):
        for fused in (True, False):
            set_fused_modconv(g, fused)
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step()
            times[fused].append((time.perf_counter() - t0) / a.steps)
    f, s = statistics.median(times[True]), statistics.median(times[False])
    print(f"{a.size} px, widths {a.channels}, batch {a.batch}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| modulated conv | s/step (median of rounds) | steps/s |")
    print("|---|---:|---:|")
    print(f"| fused (grouped conv) | {f:.3f} | {1 / f:.2f} |")
    print(f"| shared weight | {s:.3f} | {1 / s:.2f} |")
    print(f"shared-weight speed-up: {f / s:.2f}x; max |fused - shared| on the images: {err:.2e}")


if __name__ == "__main__":
    script_app(TrainStepOptions, main, __doc__)(prog_name="python benchmarks/train_step.py")
