"""Style registry and generator blending."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cptr.models import Generator
from cptr.models.checkpoints import save_generator
from cptr.styles import StyleError, add_style, get_style, list_styles, load_style_generators, remove_style, validate_name
from cptr.styles.blend import (
    GeneratorMismatchError,
    InjectedLatentEdit,
    blend_generators,
    inject_latents,
    parameter_resolution,
    target_weight,
)
from cptr.styles.builtin import ASSET_DIR
from tests.conftest import make_tiny_generator


@pytest.fixture
def pair() -> tuple[Generator, Generator]:
    return make_tiny_generator(32, seed=0), make_tiny_generator(32, seed=1)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CPTR_HOME", str(tmp_path / "store"))
    return tmp_path / "store"


def _synthesis(g: Generator, w_plus: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g([w_plus], input_is_latent=True, randomize_noise=False)[0]


# --------------------------------------------------------------------------- blending


def test_every_state_entry_has_a_resolution(pair) -> None:
    g = pair[0]
    for name, value in g.state_dict().items():
        res = parameter_resolution(name, g)
        if name.startswith("style."):
            assert res is None
        elif name.startswith("noises."):
            assert value.shape[-1] == res
        elif name.endswith("conv.weight") and "to_rgb" not in name:
            name.split(".conv.")[0]
            assert res in g.channels and g.channels[res] == value.shape[1]
        else:
            assert res in g.channels, name


@pytest.mark.parametrize("swap_res", [None, 4])
def test_alpha_zero_and_one_reproduce_source_and_target_exactly(pair, swap_res) -> None:
    src, tgt = pair
    w = torch.randn(2, src.n_latent, src.style_dim)
    b0 = blend_generators(src, tgt, 0.0, swap_res=swap_res)
    b1 = blend_generators(src, tgt, 1.0, swap_res=swap_res)
    for name, v in b0.state_dict().items():
        assert torch.equal(v, src.state_dict()[name]), name
    for name, v in b1.state_dict().items():
        expected = src if name.startswith("style.") else tgt  # mapping always from the source
        assert torch.equal(v, expected.state_dict()[name]), name
    assert torch.equal(_synthesis(b0, w), _synthesis(src, w))
    assert torch.equal(_synthesis(b1, w), _synthesis(tgt, w))


def test_swap_at_highest_resolution_takes_only_last_layers_from_target(pair) -> None:
    src, tgt = pair
    b = blend_generators(src, tgt, 1.0, swap_res=src.size)
    s, t = src.state_dict(), tgt.state_dict()
    n_target = 0
    for name, v in b.state_dict().items():
        res = parameter_resolution(name, b)
        expected = t if res == src.size else s
        n_target += res == src.size
        assert torch.equal(v, expected[name]), name
    assert n_target > 0
    assert b.blend_weights == {r: (1.0 if r == src.size else 0.0) for r in b.blend_weights}


def test_alpha_interpolates_and_source_untouched(pair) -> None:
    src, tgt = pair
    before = {k: v.clone() for k, v in src.state_dict().items()}
    b = blend_generators(src, tgt, 0.25, swap_res=16)
    for name, v in b.state_dict().items():
        res = parameter_resolution(name, b)
        if res is None or name.startswith("noises."):
            continue
        t = 0.25 if res >= 16 else 0.0
        torch.testing.assert_close(v, torch.lerp(src.state_dict()[name], tgt.state_dict()[name], t), rtol=0, atol=1e-6)
    for k, v in src.state_dict().items():
        assert torch.equal(v, before[k])


def test_blend_width_is_a_sigmoid_over_log2_resolution() -> None:
    ws = [target_weight(r, 1.0, swap_res=16, blend_width=1.0) for r in (4, 8, 16, 32, 64)]
    assert ws[2] == pytest.approx(0.5)
    assert all(a < b for a, b in zip(ws, ws[1:]))
    assert ws[3] == pytest.approx(1 / (1 + math.exp(-1)))
    assert target_weight(64, 0.5, swap_res=16, blend_width=0.01) == pytest.approx(0.5)


def test_blend_rejects_bad_options_and_mismatched_generators(pair) -> None:
    src, tgt = pair
    with pytest.raises(ValueError, match="alpha"):
        blend_generators(src, tgt, 1.5)
    with pytest.raises(ValueError, match="swap_res"):
        blend_generators(src, tgt, 0.5, swap_res=48)
    with pytest.raises(ValueError, match="blend_width needs swap_res"):
        blend_generators(src, tgt, 0.5, blend_width=1.0)
    other = make_tiny_generator(64)
    with pytest.raises(GeneratorMismatchError, match="size: source 32 vs target 64"):
        blend_generators(src, other, 0.5)


def test_latent_injection_keeps_first_entries() -> None:
    w = torch.randn(2, 10, 8)
    edited = w + 1.0
    out = inject_latents(edited, w, 3)
    assert torch.equal(out[:, :3], w[:, :3]) and torch.equal(out[:, 3:], edited[:, 3:])
    assert torch.equal(inject_latents(edited, w, 0), edited)
    wrapped = InjectedLatentEdit(torch.nn.Identity(), 4)
    assert torch.equal(wrapped(w), w)
    with pytest.raises(ValueError, match="inject_k"):
        inject_latents(edited, w, 11)


# --------------------------------------------------------------------------- registry


def test_demo_is_builtin_and_permanent(store) -> None:
    assert [s.name for s in list_styles()] == ["demo"]
    assert get_style("demo").builtin
    with pytest.raises(StyleError, match="built-in"):
        remove_style("demo")
    src, tgt = load_style_generators("demo")
    card = json.loads((ASSET_DIR / "metrics.json").read_text())  # what the model card says was shipped
    assert src.size == tgt.size == card["recipe"]["size"] and src.latent_avg is not None


def test_unknown_style_message(store) -> None:
    with pytest.raises(StyleError) as e:
        get_style("webtoon")
    assert str(e.value) == (
        "style 'webtoon' is not registered; known: demo. Add one with: cptr styles add webtoon --source ffhq256.pt --target webtoon.pt"
    )


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "Webtoon", "x" * 49, "-x", "a b", "a.b"])
def test_bad_names_rejected(store, name) -> None:
    with pytest.raises(StyleError, match="invalid style name"):
        validate_name(name)
    with pytest.raises(StyleError, match="invalid style name"):
        get_style(name)


def test_registry_round_trip(store, tmp_path, pair) -> None:
    src, tgt = pair
    sp, tp = save_generator(src, tmp_path / "src.pt"), save_generator(tgt, tmp_path / "tgt.pt")
    mp = tmp_path / "smile.pt"
    mp.write_bytes(b"mapper placeholder")
    info = add_style("webtoon", sp, tp, alpha=0.6, swap_res=16, blend_width=0.5, inject_k=2, mappers={"smile": mp}, description="d")
    assert info.source_sha256 and info.target_sha256
    data = json.loads((store / "styles.json").read_text())
    assert data["version"] == 1 and set(data["styles"]) == {"webtoon"}
    got = get_style("webtoon")
    assert (got.alpha, got.swap_res, got.blend_width, got.inject_k) == (0.6, 16, 0.5, 2)
    assert got.mappers == {"smile": str(mp.resolve())}
    assert [s.name for s in list_styles()] == ["demo", "webtoon"]
    s2, t2 = load_style_generators("webtoon")
    for k, v in tgt.state_dict().items():
        assert torch.equal(v, t2.state_dict()[k])
    with pytest.raises(StyleError, match="already registered"):
        add_style("webtoon", sp, tp)
    add_style("webtoon", sp, tp, alpha=0.9, replace=True, copy=True)
    assert get_style("webtoon").alpha == 0.9
    assert (store / "models" / "webtoon" / "target.pt").is_file()
    remove_style("webtoon")
    assert [s.name for s in list_styles()] == ["demo"]
    assert not (store / "models" / "webtoon").exists()
    with pytest.raises(StyleError, match="not registered; known: demo"):
        remove_style("webtoon")


def test_registration_validates_checkpoints(store, tmp_path, pair) -> None:
    src = pair[0]
    sp = save_generator(src, tmp_path / "src.pt")
    big = save_generator(make_tiny_generator(64), tmp_path / "big.pt")
    with pytest.raises(StyleError, match="not compatible.*size: source 32 vs target 64"):
        add_style("toon", sp, big)
    wide = Generator(32, style_dim=src.style_dim, n_mlp=src.n_mlp, channels={4: 32, 8: 32, 16: 32, 32: 16})
    with pytest.raises(StyleError, match=r"channels .*16: \(16, 32\)"):
        add_style("toon", sp, save_generator(wide, tmp_path / "wide.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(StyleError, match="junk.pt: not a PyTorch checkpoint"):
        add_style("toon", sp, junk)
    with pytest.raises(StyleError, match="does not exist"):
        add_style("toon", sp, tmp_path / "missing.pt")
    with pytest.raises(StyleError, match="swap_res"):
        add_style("toon", sp, sp, swap_res=7)
    with pytest.raises(StyleError, match="built-in"):
        add_style("demo", sp, sp)
    assert [s.name for s in list_styles()] == ["demo"]  # nothing half-registered


def test_styles_cli(store, tmp_path, pair) -> None:
    from cptr.cli import app

    sp, tp = save_generator(pair[0], tmp_path / "s.pt"), save_generator(pair[1], tmp_path / "t.pt")
    runner = CliRunner()
    r = runner.invoke(app, ["styles", "add", "disney", "--source", str(sp), "--target", str(tp), "--swap-res", "8"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["styles", "list"])
    assert r.exit_code == 0 and "demo" in r.output and "disney" in r.output and "swap_res=8" in r.output
    r = runner.invoke(app, ["styles", "show", "disney"])
    assert json.loads(r.output)["swap_res"] == 8
    r = runner.invoke(app, ["styles", "show", "nope"])
    assert r.exit_code == 2 and "style 'nope' is not registered; known: demo, disney" in r.output
    r = runner.invoke(app, ["styles", "remove", "disney"])
    assert r.exit_code == 0


@pytest.mark.slow
def test_a_style_without_encoder_says_so_from_add_to_the_client(store, tmp_path, pair) -> None:
    """Two random-weight checkpoints registered without --encoder: `styles add` warns with the fix, `styles list`
    shows it serves generate only, `cptr-export` notes that only generate_<style> is built, and the real server's
    client, asked to cartoonize with it, names the missing encoder instead of suggesting a re-export."""
    pytest.importorskip("pytriton")
    pytest.importorskip("tritonclient.grpc")
    from cptr.cli import app
    from cptr.client import CartoonClient, UnknownStyleError
    from cptr.export.cli import app as export_app
    from cptr.serving.server import TritonServer

    sp, tp = save_generator(pair[0], tmp_path / "s.pt"), save_generator(pair[1], tmp_path / "t.pt")
    runner = CliRunner()
    r = runner.invoke(app, ["styles", "add", "webtoon", "--source", str(sp), "--target", str(tp)])
    assert r.exit_code == 0, r.output
    assert "an export serves: generate" in r.output and "has no encoder" in r.output and "--encoder e4e_ffhq_encode.pt" in r.output
    assert "cptr-train encoder" in r.output
    r = runner.invoke(app, ["styles", "list"])
    line = next(x for x in r.output.splitlines() if x.startswith("webtoon"))
    assert "serves=generate (no encoder: no cartoonize)" in line
    assert "serves=generate,cartoonize,edit:smile" in next(x for x in r.output.splitlines() if x.startswith("demo"))
    repo = tmp_path / "triton_repo"
    r = runner.invoke(export_app, ["--style", "webtoon", "--alpha", "0.7", "--out", str(repo), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "only generate_webtoon is built" in r.output and "has no encoder" in r.output
    with TritonServer(repo) as server, CartoonClient(server.grpc_url, timeout_s=60) as client:
        assert client.generate([1], style="webtoon", output="array")[0].shape == (32, 32, 3)
        with pytest.raises(UnknownStyleError, match="without an encoder, so it cannot cartoonize photos") as err:
            client.cartoonize(np.zeros((64, 64, 3), np.uint8), style="webtoon")
        assert "--encoder" in str(err.value) and "restart" not in str(err.value)
