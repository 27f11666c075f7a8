"""``cptr edit``: StyleCLIP latent optimisation.

* against StyleCLIP's formula, with a tiny CLIP and ArcFace from random weights: every step's
  objective is ``clip_loss + l2_lambda * ((w - w0) ** 2).sum() + id_lambda * id_loss`` computed from
  CPTR's own loss modules, and the learning rate is StyleCLIP's ``get_lr`` ramp (both to 1e-6);
* on the shipped demo models: 50 steps with the smile critic raise the smile score on >= 9 of 10
  seeds, and the L2 term bounds the distance from the start latent;
* the command writes its files, and its W+ is what the served synthesis takes.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cptr.editing.optimize import OptimizeConfig, optimize_latent, synthesize
from cptr.models.arcface import IDLoss
from cptr.models.clip_loss import CLIPLoss
from tests.conftest import make_tiny_generator
from tests.test_loss_networks import tiny_arcface, tiny_clip

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("single_thread")


def styleclip_get_lr(t, initial_lr, rampdown=0.25, rampup=0.05):
    """StyleCLIP's optimization/run_optimization.py get_lr, written out again for the check."""
    lr_ramp = min(1, (1 - t) / rampdown)
    lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
    lr_ramp = lr_ramp * min(1, t / rampup)
    return initial_lr * lr_ramp


@pytest.mark.parametrize("id_lambda", [0.0, 0.05])
def test_objective_and_lr_follow_styleclip(id_lambda):
    g = make_tiny_generator(size=32).eval()
    clip = CLIPLoss(tiny_clip(), "a smiling face")
    idl = IDLoss(tiny_arcface())
    torch.manual_seed(3)
    w0 = g.style(torch.randn(1, g.style_dim)).detach().unsqueeze(1).expand(1, g.n_latent, -1).clone()
    cfg = OptimizeConfig(steps=12, lr=0.1, l2_lambda=0.008, id_lambda=id_lambda, mode="edit")
    res = optimize_latent(g, w0, clip, cfg, idl if id_lambda else None, snapshot_every=1)
    assert len(res.history) == 12 and len(res.snapshots) == 12
    with torch.no_grad():
        image0 = synthesize(g, w0)
        for i, parts in enumerate(res.history):
            assert parts["lr"] == pytest.approx(styleclip_get_lr(i / cfg.steps, cfg.lr), abs=1e-6)
            w = w0 if i == 0 else res.snapshots[i - 1]  # the latent this step evaluated
            img = synthesize(g, w)
            expected = clip(img) + cfg.l2_lambda * ((w - w0) ** 2).sum() + (id_lambda * idl(img, image0) if id_lambda else 0.0)
            assert parts["loss"] == pytest.approx(float(expected), rel=1e-6, abs=1e-6), i
    assert not torch.equal(res.w, w0)
    # free generation: the text loss alone
    free = optimize_latent(g, w0, clip, OptimizeConfig(steps=3, mode="free_generation"))
    with torch.no_grad():
        assert free.history[0]["loss"] == pytest.approx(float(clip(synthesize(g, w0))), rel=1e-6)
    with pytest.raises(ValueError, match="mode"):
        OptimizeConfig(mode="sketch").validate()
    with pytest.raises(ValueError, match="identity"):
        optimize_latent(g, w0, clip, OptimizeConfig(steps=1, id_lambda=0.1))


def test_smile_edit_on_the_demo_models():
    from cptr.data.critic import AttributeLoss, load_critic
    from cptr.demo import missing_assets

    if missing_assets():
        pytest.skip("the demo models are not in the package")
    from cptr.serving.stages import seed_latents
    from cptr.styles import load_style_generators

    source, _ = load_style_generators("demo")
    loss = AttributeLoss(load_critic(), "smile")
    cfg = OptimizeConfig(steps=50)
    centre = source.latent_avg.reshape(1, 1, -1)
    rose, dists, bounds = 0, [], []
    for seed in range(10):
        with torch.no_grad():
            w = source.style(torch.from_numpy(seed_latents([seed], source.style_dim))).reshape(1, 1, -1)
            w0 = (centre + 0.7 * (w - centre)).expand(1, source.n_latent, -1).clone()
        res = optimize_latent(source, w0, loss, cfg)
        with torch.no_grad():
            before, after = loss.score(synthesize(source, w0)), loss.score(synthesize(source, res.w))
            text0 = float(loss(synthesize(source, w0)))
        rose += int(after > before)
        dists.append(float(((res.w - w0) ** 2).sum()))
        # The bound: the run ends no worse than it started, so l2_lambda * ||w - w0||^2 <= text_loss(w0) (+ Adam's last-step slack).
        bounds.append(text0 / cfg.l2_lambda + 5.0)
    print(f"smile rose on {rose}/10 seeds; ||w - w0||^2 = {np.round(dists, 1)} (bounds {np.round(bounds, 1)})")
    assert rose >= 9
    assert all(d <= b for d, b in zip(dists, bounds)), (dists, bounds)


def test_cptr_edit_command_writes_its_files(tmp_path):
    from cptr.demo import missing_assets

    if missing_assets():
        pytest.skip("the demo models are not in the package")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "e"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cptr.cli",
            "edit",
            "--seed",
            "2",
            "--critic",
            "smile",
            "--steps",
            "5",
            "--strip",
            "1",
            "-o",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    for name in ("edited.png", "before_after.png", "w_plus.npy", "steps.png"):
        assert (out / name).is_file(), name
    w = np.load(out / "w_plus.npy")
    # the W+ the served synthesis takes: [n_latent, style_dim] float32 per request
    from cptr.styles import load_style_generators

    source, _ = load_style_generators("demo")
    assert w.shape == (source.n_latent, source.style_dim) and w.dtype == np.float32
    bad = subprocess.run(
        [sys.executable, "-m", "cptr.cli", "edit", "--seed", "2", "-o", str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert bad.returncode == 2 and "--critic" in bad.stderr
