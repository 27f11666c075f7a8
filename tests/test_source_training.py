"""``cptr-train source``: StyleGAN2 from scratch in the one training loop.

A real tiny model (16 px) on real image files: it must learn something measurable (the colours of a
4-colour data set), resume bit for bit, write checkpoints that every loader and ``finetune`` read,
and reject bad architecture options with a clear message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cptr.data.evaluate import sample_generator
from cptr.helptext import flags
from cptr.models.checkpoints import load_generator
from cptr.training.checkpointing import load_checkpoint
from cptr.training.config import TrainConfig, parse_channels
from cptr.training.finetune import train
from tests.test_training import _assert_same_state, _env
from tests.tiny import IN_PROCESS

pytestmark = pytest.mark.usefixtures("single_thread")
SIZE = 16
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 70, 230], [240, 220, 40]], np.float32)
ARCH = dict(size=SIZE, channels="32,32,16", style_dim=32, n_mlp=2)
RUN = dict(
    **ARCH,
    batch=8,
    r1=1.0,
    ema=0.9,
    path_reg=0.0,
    mixing=0.9,
    augment="none",
    lr=0.004,
    sample_every=1000,
    save_every=1000,
    keep=0,
    log_every=10,
    **IN_PROCESS,
)


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    """64 images, each one flat colour of PALETTE with a little noise."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for i in range(64):
        a = PALETTE[i % 4] + rng.normal(0, 6, (SIZE, SIZE, 3))
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    return root


def _palette_distance(images: torch.Tensor) -> float:
    """Mean distance (0..255 units) from each pixel to the nearest palette colour."""
    px = ((images.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).reshape(-1, 1, 3).numpy()
    return float(np.linalg.norm(px - PALETTE[None], axis=2).min(1).mean())


def _near_palette(images: torch.Tensor, radius: float = 60.0) -> float:
    """Share of pixels within ``radius`` of a palette colour (the data's colour histogram mass)."""
    px = ((images.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).reshape(-1, 1, 3).numpy()
    return float((np.linalg.norm(px - PALETTE[None], axis=2).min(1) < radius).mean())


def test_parse_channels_forms_and_errors():
    assert parse_channels("128,64,32", 16) == {4: 128, 8: 64, 16: 32}
    assert parse_channels("4:8, 8:8, 16:4", 16) == {4: 8, 8: 8, 16: 4}
    for bad in ("128,64", "a,b,c", "4:8,8:8", "128,64,0"):
        with pytest.raises(ValueError, match="--channels"):
            parse_channels(bad, 16)
    with pytest.raises(ValueError, match="need a source model"):
        TrainConfig(data="x", size=16, freeze_g=1).validate()
    with pytest.raises(ValueError, match="power of two"):
        TrainConfig(data="x", size=24).validate()


def test_a_tiny_scratch_run_learns_the_data_colours(colours, tmp_path):
    cfg = TrainConfig.for_source(data=str(colours), out=str(tmp_path / "run"), iters=200, seed=0, **RUN)
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "000200.pt")
    g = load_generator(tmp_path / "run" / "checkpoints" / "000200.pt")
    torch.manual_seed(cfg.seed)
    from cptr.models.stylegan2 import Generator

    untrained = Generator(**g.config()).eval()
    before, after = sample_generator(untrained, 64, seed=1), sample_generator(g, 64, seed=1)
    d0, d1 = _palette_distance(before), _palette_distance(after)
    near0, near1 = _near_palette(before), _near_palette(after)
    # The untrained generator's pixels sit far from every palette colour; the trained one's close.
    assert d1 < 0.8 * d0, (d0, d1)  # measured: 110 -> 75
    assert near1 > near0 + 0.15, (near0, near1)
    print(f"palette distance {d0:.1f} -> {d1:.1f}; pixels near a data colour {near0:.1%} -> {near1:.1%}")
    # The checkpoint describes a from-scratch run and its architecture.
    assert ckpt["args"]["source"] == "" and ckpt["args"]["size"] == SIZE and ckpt["args"]["g_channels"] == "32,32,16"
    assert g.channels == {4: 32, 8: 32, 16: 16} and g.style_dim == 32 and g.n_mlp == 2
    assert ckpt["latent_avg"].shape == (32,)
    # Every layer trained, the mapping network included.
    untrained_sd = untrained.state_dict()
    for name, p in g.named_parameters():
        assert not torch.equal(p, untrained_sd[name]), f"{name} did not train"


def test_scratch_resume_is_bitwise_and_finetune_reads_the_checkpoint(colours, tmp_path):
    run = {**RUN, "save_every": 6, "path_reg": 2.0, "seed": 3, "data": str(colours)}  # path length on: its RNG resumes too
    train(TrainConfig.for_source(out=str(tmp_path / "a"), iters=12, **run))
    train(TrainConfig.for_source(out=str(tmp_path / "b"), iters=6, **run))
    train(TrainConfig.for_source(out=str(tmp_path / "b"), resume=True, iters=12, **run))
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "000012.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "000012.pt")
    _assert_same_state(a, b)
    # a changed architecture is refused on resume
    with pytest.raises(ValueError, match="style_dim"):
        train(TrainConfig.for_source(out=str(tmp_path / "b"), resume=True, iters=14, **{**run, "style_dim": 16}))
    # FreezeSG fine-tuning starts from the scratch checkpoint (its discriminator included)
    ft = TrainConfig(
        source=str(tmp_path / "a" / "checkpoints" / "000012.pt"),
        data=str(colours),
        out=str(tmp_path / "ft"),
        iters=2,
        batch=4,
        freeze_style=1,
        freeze_g=1,
        freeze_d=1,
        structure_loss=1,
        augment="none",
        sample_every=2,
        save_every=2,
        **IN_PROCESS,
    )
    train(ft)
    assert (tmp_path / "ft" / "checkpoints" / "000002.pt").is_file()
    assert (tmp_path / "ft" / "samples" / "000002.png").is_file()


def test_cli_source_help_defaults_and_errors(colours, tmp_path):
    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "cptr.training", *a], capture_output=True, text=True, env=_env(COLUMNS="300"), timeout=120
        )  # noqa: E731

    h = run("source", "--help")
    assert h.returncode == 0 and "from scratch" in h.stdout and "[default: 4000]" in h.stdout and "--channels" in h.stdout
    bad = run("source", "--data", str(colours), "--out", str(tmp_path / "x"), "--size", "16", "--channels", "8,8")
    assert bad.returncode == 2 and "--channels" in bad.stderr and "Traceback" not in bad.stderr
    run_flags = flags(data=colours, out=tmp_path / "y", size=16, channels="16,16,8", style_dim=16, n_mlp=1, iters=2, batch=4, workers=0)
    ok = run("source", *run_flags, "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "y" / "checkpoints" / "000002.pt").is_file()
    # cptr-train eval on it: JSON report with the baselines, the noise mode, and the grid of what it scored
    eval_args = ("eval", "-g", str(tmp_path / "y" / "checkpoints" / "000002.pt"), *flags(data=colours, n=10), "--no-faces")
    ev = run(*eval_args, *flags(noise_mode="none", grid=tmp_path / "grid.png", out=tmp_path / "eval.json"))
    assert ev.returncode == 0, ev.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["noise_mode"] == "none" and [r["name"] for r in report["rows"]] == ["generator", "untrained", "data vs data"]
    assert all(np.isfinite(r["fid"]) for r in report["rows"])
    assert Image.open(tmp_path / "grid.png").size == (8 * SIZE + 9 * 2, 2 * SIZE + 3 * 2)
    bad_mode = run(*eval_args, *flags(noise_mode="loud"))
    assert bad_mode.returncode == 2 and "noise mode" in bad_mode.stderr and "Traceback" not in bad_mode.stderr


def test_grow_from_a_smaller_run(colours, tmp_path):
    """`--grow-from`: a 32 px run starts the layers it shares with a 16 px run from that run's g_ema and d (the
    discriminator's blocks one index further down), its new top block from scratch; it then trains as usual, and a
    resume does not grow again."""
    small = tmp_path / "small"
    train(TrainConfig.for_source(out=str(small), iters=2, **{**RUN, "data": str(colours)}))
    ckpt = small / "checkpoints" / "000002.pt"
    big = TrainConfig.for_source(
        out=str(tmp_path / "big"), iters=2, grow_from=str(ckpt), **{**RUN, "size": 32, "channels": "32,32,16,8", "data": str(colours)}
    )
    train(big)
    s, b = load_checkpoint(ckpt), load_checkpoint(tmp_path / "big" / "checkpoints" / "000002.pt")
    assert b["args"]["grow_from"] == str(ckpt)
    from cptr.models.stylegan2 import Discriminator, Generator
    from cptr.training.finetune import grow

    g = Generator(32, 32, 2, channels=parse_channels("32,32,16,8", 32))
    d = Discriminator(32, channels=g.channels)
    fresh_rgb = d.state_dict()["convs.0.0.weight"].clone()
    n = grow(g, d, ckpt)
    gs, ds = g.state_dict(), d.state_dict()
    assert n > 20
    for name in ("style.1.weight", "input.input", "conv1.conv.weight", "convs.1.conv.weight", "to_rgbs.1.conv.weight"):
        assert torch.equal(gs[name], s["g_ema"][name]), name
    assert torch.equal(ds["convs.2.conv1.0.weight"], s["d"]["convs.1.conv1.0.weight"])  # 16 -> 8 block, one further down
    assert torch.equal(ds["final_linear.1.weight"], s["d"]["final_linear.1.weight"])
    assert torch.equal(ds["convs.0.0.weight"], fresh_rgb)  # fromRGB reads 32 px: not copied
    with pytest.raises(ValueError, match="--grow-from starts a from-scratch run"):
        TrainConfig(source=str(ckpt), data=str(colours), grow_from=str(ckpt)).validate()


def test_cli_prepare_writes_an_lmdb(colours, tmp_path):
    """`cptr-train prepare` (it once failed on every call: its --workers and --quiet were never declared)."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cptr.training",
            "prepare",
            str(colours),
            "--out",
            str(tmp_path / "c.lmdb"),
            "--size",
            "16",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "wrote 64 images" in r.stdout and (tmp_path / "c.lmdb" / "data.mdb").is_file()
