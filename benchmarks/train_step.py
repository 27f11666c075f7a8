"""Time one StyleGAN2 training step (discriminator + generator) with the modulated convs fused
(one grouped conv with per-sample weights) against their shared-weight form, in interleaved rounds.

    .venv/bin/python benchmarks/train_step.py                 # the demo recipe: 64 px, 128,128,64,32,32
    .venv/bin/python benchmarks/train_step.py --size 256 --channels 512,512,512,256,128,64,32

Both forms compute the same function; the script prints their largest output difference beside the times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cptr.models.stylegan2 import Discriminator, Generator, set_fused_modconv
from cptr.training.config import parse_channels
from cptr.training.losses import d_logistic_loss, g_nonsaturating_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", default="128,128,64,32,32")
    ap.add_argument("--style-dim", type=int, default=256)
    ap.add_argument("--n-mlp", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="steps per engine per round")
    a = ap.parse_args()

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
    main()
