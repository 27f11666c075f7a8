"""StyleCLIP levels mapper: official numerics and checkpoint format, and training with CLIP/L2/ID losses."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from cptr.models.arcface import IDLoss
from cptr.models.checkpoints import CheckpointError
from cptr.models.clip_loss import CLIPLoss
from cptr.models.mapper import LevelsMapper, load_mapper, save_mapper
from cptr.training.mapper_train import MapperLossWeights, render, sample_latents, train_mapper
from tests.conftest import make_tiny_generator
from tests.test_loss_networks import tiny_arcface, tiny_clip


def official_levels_forward(sd: dict[str, torch.Tensor], w: torch.Tensor, levels=("course", "medium", "fine")) -> torch.Tensor:
    """StyleCLIP's LevelsMapper written out with plain ops from the official key names.

    PixelNorm(dim=1) on the [B, entries, 512] slice, then EqualLinear (scale lr_mul/sqrt(in)) and
    leaky_relu(x + bias * lr_mul, 0.2) * sqrt(2) on the last axis (StyleCLIP's 3-D fused_leaky_relu).
    """
    lr_mul = 0.01
    parts = []
    for name, sl in zip(("course", "medium", "fine"), (slice(0, 4), slice(4, 8), slice(8, None))):
        x = w[:, sl]
        if name not in levels:
            parts.append(torch.zeros_like(x))
            continue
        x = x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)
        for i in range(1, 5):
            wt = sd[f"mapper.{name}_mapping.mapping.{i}.weight"]
            b = sd[f"mapper.{name}_mapping.mapping.{i}.bias"]
            x = x @ (wt * lr_mul / math.sqrt(wt.shape[1])).t()
            x = torch.nn.functional.leaky_relu(x + b * lr_mul, 0.2) * math.sqrt(2)
        parts.append(x)
    return torch.cat(parts, 1)


def random_official_state(levels=("course", "medium", "fine"), dim: int = 512, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for name in levels:
        for i in range(1, 5):
            sd[f"mapper.{name}_mapping.mapping.{i}.weight"] = torch.randn(dim, dim, generator=gen) / 0.01
            sd[f"mapper.{name}_mapping.mapping.{i}.bias"] = torch.randn(dim, generator=gen)
    return sd


@pytest.mark.parametrize("size,n_latent", [(1024, 18), (256, 14)])
def test_official_checkpoint_loads_and_matches_official_numerics(tmp_path, size, n_latent):
    sd = random_official_state()
    sd["decoder.style.1.weight"] = torch.zeros(2, 2)  # StyleCLIP files also carry the generator
    opts = argparse.Namespace(
        mapper_type="LevelsMapper",
        no_coarse_mapper=False,
        no_medium_mapper=False,
        no_fine_mapper=False,
        stylegan_size=size,
        description="a really angry face",
    )
    path = tmp_path / "angry.pt"
    torch.save({"state_dict": sd, "opts": opts}, path)
    mapper = load_mapper(path)
    assert mapper.n_latent == n_latent and mapper.description == "a really angry face"
    w = torch.randn(3, n_latent, 512)
    with torch.no_grad():
        torch.testing.assert_close(mapper(w), official_levels_forward(sd, w), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mapper.edit(w), w + 0.1 * official_levels_forward(sd, w), atol=1e-5, rtol=1e-5)
    # An 18-latent (1024 px) mapper applied to a 256 px generator: override n_latent.
    if size == 1024:
        assert load_mapper(path, n_latent=14)(torch.randn(1, 14, 512)).shape == (1, 14, 512)


def test_round_trip_keeps_official_names_and_switched_off_levels(tmp_path):
    torch.manual_seed(0)
    mapper = LevelsMapper(n_latent=14, style_dim=512, medium=False, description="smile")
    with torch.no_grad():
        for p in mapper.parameters():
            p.add_(torch.randn_like(p))
    path = save_mapper(mapper, tmp_path / "smile.pt", opts={"clip_lambda": 1.0})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "opts"}
    keys = set(raw["state_dict"])
    assert "mapper.course_mapping.mapping.1.weight" in keys and "mapper.fine_mapping.mapping.4.bias" in keys
    assert not any(k.startswith("mapper.medium_mapping") for k in keys)
    assert len(keys) == 2 * 4 * 2
    o = raw["opts"]
    assert o["no_medium_mapper"] is True and o["no_coarse_mapper"] is False and o["stylegan_size"] == 256
    assert o["description"] == "smile" and o["clip_lambda"] == 1.0
    loaded = load_mapper(path)
    assert loaded.n_latent == 14 and loaded.levels == {"coarse": True, "medium": False, "fine": True}
    w = torch.randn(2, 14, 512)
    with torch.no_grad():
        out = loaded(w)
        assert torch.equal(out, mapper(w))
        assert torch.equal(out[:, 4:8], torch.zeros(2, 4, 512))
        torch.testing.assert_close(out, official_levels_forward(raw["state_dict"], w, ("course", "fine")), atol=1e-5, rtol=1e-5)
    # 18-latent round trip
    big = LevelsMapper(n_latent=18)
    assert load_mapper(save_mapper(big, tmp_path / "big.pt")).n_latent == 18


def test_inconsistent_or_foreign_checkpoints_are_refused(tmp_path):
    sd = random_official_state(levels=("course", "fine"), dim=8)
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": sd, "opts": {"no_medium_mapper": False}}, path)
    with pytest.raises(CheckpointError, match="no_medium_mapper=False but the medium weights are missing"):
        load_mapper(path)
    torch.save({"state_dict": sd, "opts": {"mapper_type": "SingleMapper"}}, path)
    with pytest.raises(CheckpointError, match="only StyleCLIP's LevelsMapper"):
        load_mapper(path)
    torch.save({"state_dict": {"g_ema.x": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="no StyleCLIP mapper weights"):
        load_mapper(path)


def test_training_lowers_clip_loss_l2_keeps_edits_small_and_loss_networks_stay_frozen(single_thread):
    g = make_tiny_generator(size=64)  # n_latent 10: coarse 0-3, medium 4-7, fine 8-9
    clip_model = tiny_clip()
    arcface = tiny_arcface()
    frozen = {
        **{f"clip.{k}": v.clone() for k, v in clip_model.state_dict().items()},
        **{f"arc.{k}": v.clone() for k, v in arcface.state_dict().items()},
        **{f"g.{k}": v.clone() for k, v in g.state_dict().items()},
    }
    clip_loss = CLIPLoss(clip_model, "a really angry face")
    id_loss = IDLoss(arcface)
    latents = sample_latents(g, 16, seed=0)

    def eval_clip(m: LevelsMapper) -> float:
        with torch.no_grad():
            return float(clip_loss(render(g, m.edit(latents))))

    results = {}
    for l2 in (0.0, 0.8):
        torch.manual_seed(0)
        mapper = LevelsMapper(g.n_latent, g.style_dim)
        start = eval_clip(mapper)
        train_mapper(mapper, g, latents, clip_loss, id_loss, MapperLossWeights(1.0, l2, 0.1), steps=50, batch=4, lr=0.5, seed=0)
        with torch.no_grad():
            norm = float((mapper.edit(latents) - latents).norm(dim=-1).mean())
        results[l2] = (start, eval_clip(mapper), norm)
    for l2, (start, end, _) in results.items():
        assert end < start - 0.01, f"lambda_l2={l2}: CLIP loss {start:.4f} -> {end:.4f} did not fall"
    assert results[0.8][2] < 0.6 * results[0.0][2], results
    print(f"CLIP loss / edit norm: {results}")
    for name, t in {
        **{f"clip.{k}": v for k, v in clip_model.state_dict().items()},
        **{f"arc.{k}": v for k, v in arcface.state_dict().items()},
        **{f"g.{k}": v for k, v in g.state_dict().items()},
    }.items():
        assert torch.equal(t, frozen[name]), f"{name} changed during mapper training"
    for net in (clip_model, arcface, g):
        assert all(not p.requires_grad for p in net.parameters())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_cli_trains_saves_registers_and_reports_missing_weights(tmp_path, monkeypatch, single_thread):
    from typer.testing import CliRunner

    from cptr.models.checkpoints import save_generator
    from cptr.models.clip_shim import tokenize
    from cptr.styles import add_style, get_style
    from cptr.training.cli import app

    monkeypatch.setenv("CPTR_HOME", str(tmp_path / "home"))
    g_path = save_generator(make_tiny_generator(size=64), tmp_path / "g64.pt")
    add_style("tiny", g_path, g_path)
    clip_path = tmp_path / "ViT-tiny.pt"
    torch.jit.trace(tiny_clip(), (torch.rand(1, 3, 32, 32), tokenize("x"))).save(str(clip_path))
    runner = CliRunner()
    out = tmp_path / "run"
    args = [
        "mapper",
        "--style",
        "tiny",
        "--prompt",
        "a really angry face",
        "--clip-weights",
        str(clip_path),
        "--lambda-id",
        "0",
        "--steps",
        "4",
        "--n-latents",
        "8",
        "--sample-every",
        "2",
        "--save-every",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    final = out / "checkpoints" / "a_really_angry_face.pt"
    assert final.is_file() and (out / "checkpoints" / "iteration_2.pt").is_file()
    assert (out / "samples" / "000002.png").is_file() and (out / "samples" / "final.png").is_file()
    assert load_mapper(final).description == "a really angry face"
    assert get_style("tiny").mappers == {"a_really_angry_face": str(final.resolve())}

    res = runner.invoke(app, [*args[:5], "--clip-weights", str(tmp_path / "missing" / "ViT-B-32.pt"), "--lambda-id", "0"])
    assert res.exit_code == 2
    assert "CLIP ViT-B/32 weights not found" in res.output and "openaipublic.azureedge.net" in res.output
    res = runner.invoke(app, [*args[:7]])
    assert res.exit_code == 2 and "--arcface-weights" in res.output
