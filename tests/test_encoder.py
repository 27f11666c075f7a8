"""Encoder: pSp/e4e names and checkpoints, training on generator samples, demo encoder, ONNX export of
the encoder and mapper, and the exported encoder -> mapper -> synthesis chain against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cptr import contracts
from cptr.contracts import W_PLUS_EDIT
from cptr.engines.onnxruntime import ort_session
from cptr.export.onnx import export_encoder, export_mapper, export_synthesis
from cptr.models.checkpoints import CheckpointError
from cptr.models.encoder import Encoder, load_encoder, save_encoder, small_encoder_config
from cptr.models.mapper import LevelsMapper
from cptr.styles.builtin import demo_encoder
from cptr.training.encoder_train import (
    EncoderLossWeights,
    delta_penalty,
    generator_mean_latent,
    reconstruction_error,
    train_encoder,
)
from tests.conftest import make_tiny_generator


def test_full_size_encoder_has_psp_gradual_style_encoder_names():
    enc = Encoder(n_latent=18)  # pSp's FFHQ encoder: IR-SE50, 18 heads
    sd = enc.state_dict()
    assert len(enc.body) == 24 and len(enc.styles) == 18
    for key in (
        "input_layer.0.weight",
        "input_layer.2.weight",
        "body.23.res_layer.5.fc2.weight",
        "latlayer1.weight",
        "latlayer1.bias",
        "latlayer2.weight",
        "styles.0.convs.6.weight",
        "styles.0.linear.weight",
        "styles.0.linear.bias",
        "styles.17.convs.10.bias",
    ):
        assert key in sd, key
    assert "styles.0.convs.8.weight" not in sd  # 16x16 -> 1x1: four stride-2 convs for coarse heads
    assert "styles.17.convs.12.weight" not in sd  # 64x64 -> 1x1: six for fine heads
    assert sd["latlayer1.weight"].shape == (512, 256, 1, 1) and sd["latlayer2.weight"].shape == (512, 128, 1, 1)
    assert sd["styles.3.linear.weight"].shape == (512, 512)


def test_psp_and_e4e_checkpoints_load(tmp_path, single_thread):
    torch.manual_seed(0)
    cfg = {**small_encoder_config(10, 64, input_size=64, width=16), "widths": [8, 16, 24, 32]}  # distinct widths, as pSp
    ref = Encoder(**cfg).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    sd = {f"encoder.{k}": v for k, v in ref.state_dict().items() if k != "latent_avg"}
    sd["decoder.style.1.weight"] = torch.zeros(1)
    latent_avg = torch.randn(64)
    for etype in ("GradualStyleEncoder", "Encoder4Editing"):
        path = tmp_path / f"{etype}.pt"
        torch.save(
            {
                "state_dict": sd,
                "opts": {"encoder_type": etype, "cptr_input_size": 64, "start_from_latent_avg": True},
                "latent_avg": latent_avg,
            },
            path,
        )
        enc = load_encoder(path)
        assert enc.config()["units"] == [1, 1, 1, 1] and enc.config()["widths"] == [8, 16, 24, 32]
        with torch.no_grad():
            offs = ref.offsets(x)
            if etype == "GradualStyleEncoder":
                expected = offs + latent_avg
            else:  # e4e: w0 from head 0, every other entry w0 + its delta
                expected = torch.cat([offs[:, :1], offs[:, :1] + offs[:, 1:]], 1) + latent_avg
            torch.testing.assert_close(enc(x), expected, atol=1e-6, rtol=1e-6)
    torch.save({"state_dict": sd, "opts": {"encoder_type": "BackboneEncoderUsingLastLayerIntoW"}}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="not supported"):
        load_encoder(tmp_path / "w.pt")
    torch.save({"state_dict": sd, "opts": {"input_nc": 1}}, tmp_path / "sketch.pt")
    with pytest.raises(CheckpointError, match="only RGB"):
        load_encoder(tmp_path / "sketch.pt")


def test_training_halves_reconstruction_error_and_onnx_matches(tmp_path, single_thread):
    g = make_tiny_generator(size=32)
    torch.manual_seed(0)
    enc = Encoder(**small_encoder_config(g.n_latent, g.style_dim, input_size=32, width=16), latent_avg=generator_mean_latent(g))
    before, baseline = reconstruction_error(enc, g)
    g_before = {k: v.clone() for k, v in g.state_dict().items()}
    train_encoder(enc, g, steps=200, batch=8, lr=2e-3, weights=EncoderLossWeights(latent=1.0, l2=1.0, id=0.0), seed=0)
    after, baseline2 = reconstruction_error(enc, g)
    assert baseline2 == baseline
    assert after < 0.5 * baseline, f"reconstruction MSE {after:.4f} vs average latent {baseline:.4f} (untrained {before:.4f})"
    print(f"reconstruction MSE: untrained {before:.4f}, trained {after:.4f}, average latent {baseline:.4f}")
    for k, v in g.state_dict().items():
        assert torch.equal(v, g_before[k]), k
    # checkpoint round trip in the pSp layout
    path = save_encoder(enc, tmp_path / "enc.pt")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "opts", "latent_avg"} and all(k.startswith("encoder.") for k in raw["state_dict"])
    loaded = load_encoder(path)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), enc(x))
    # ONNX: fp32 and fp16 within the exporter's tolerances at batch 1 and 3
    art = export_encoder(loaded, tmp_path / "encoder.onnx")
    assert art.stage == contracts.ENCODER and art.inputs[0].name == "aligned" and art.outputs[0] == contracts.w_plus(g.n_latent, 64)
    assert set(art.max_abs_error) == {"batch1", "batch3"} and max(art.max_abs_error.values()) < 1e-3
    sess = ort_session(tmp_path / "encoder.onnx")
    (onnx_out,) = sess.run(["w_plus"], {"aligned": x.numpy()})
    np.testing.assert_allclose(onnx_out, enc(x).detach().numpy(), atol=1e-4, rtol=0)
    art16 = export_encoder(loaded, tmp_path / "encoder_fp16.onnx", precision="fp16")
    assert max(art16.max_abs_error.values()) < 2e-2
    print(f"encoder ONNX max abs error: fp32 {art.max_abs_error}, fp16 {art16.max_abs_error}")


def test_demo_encoder_is_deterministic_and_exports_with_the_aligned_contract(tmp_path, single_thread):
    from cptr.demo import demo_generators

    a = demo_encoder()
    b = demo_encoder()
    src, _ = demo_generators()  # the shipped 64 px demo: W+ [10, 256], the encoder pools the 256 px crop to 64
    assert (a.n_latent, a.style_dim, a.input_size, a.pool) == (src.n_latent, src.style_dim, 256, 4) == (10, 256, 256, 4)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        w = a(x)
    assert w.shape == (2, 10, 256) and torch.isfinite(w).all()
    assert (w[0] - w[1]).abs().max() > 1e-3  # depends on the picture
    art = export_encoder(a, tmp_path / "demo_encoder.onnx")
    assert art.inputs == [contracts.ALIGNED]
    assert max(art.max_abs_error.values()) < 1e-3


def test_exported_encoder_mapper_synthesis_chain_equals_pytorch(tmp_path, single_thread):
    g = make_tiny_generator(size=64)  # n_latent 10
    torch.manual_seed(3)
    enc = Encoder(**small_encoder_config(g.n_latent, g.style_dim, input_size=64, width=16), latent_avg=generator_mean_latent(g)).eval()
    with torch.no_grad():  # give the untrained heads a realistic spread around the mean latent
        for head in enc.styles:
            head.linear.weight.mul_(3.0)
    mapper = LevelsMapper(g.n_latent, g.style_dim, fine=False).eval()
    with torch.no_grad():
        for p in mapper.parameters():
            p.add_(0.5 * torch.randn_like(p))
    a_enc = export_encoder(enc, tmp_path / "encoder.onnx")
    a_map = export_mapper(mapper, tmp_path / "mapper.onnx", generator=g)
    a_syn = export_synthesis(g, tmp_path / "synthesis.onnx")
    assert a_map.inputs[0].name == "w_plus" and a_map.outputs[0].name == W_PLUS_EDIT == "w_plus_edit"
    assert a_map.outputs[0] == contracts.w_plus(g.n_latent, g.style_dim, name="w_plus_edit")
    assert a_syn.inputs[0].name == "w_plus"

    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        w_ref = enc(x)
        edit_ref = mapper.edit(w_ref)
        img_ref, _ = g([edit_ref], input_is_latent=True, randomize_noise=False)
    assert (edit_ref - w_ref).abs().max() > 1e-2  # the mapper does edit
    s_enc, s_map, s_syn = (ort_session(a.onnx_path) for a in (a_enc, a_map, a_syn))
    (w,) = s_enc.run(["w_plus"], {"aligned": x.numpy()})
    (edit,) = s_map.run(["w_plus_edit"], {"w_plus": w})
    (img,) = s_syn.run(["image"], {"w_plus": edit})
    w_err = float(np.abs(w - w_ref.numpy()).max())
    edit_err = float(np.abs(edit - edit_ref.numpy()).max())
    img_err = float(np.abs(img - img_ref.numpy()).max())
    assert w_err < 1e-4 and edit_err < 1e-4, (w_err, edit_err)
    assert img_err < 1e-3, f"chain image differs by {img_err:.2e}"
    print(f"chain max abs error: w_plus {w_err:.2e}, w_plus_edit {edit_err:.2e}, image {img_err:.2e}")


def test_perceptual_loss_is_the_unweighted_lpips_of_the_critic_trunk(single_thread):
    from cptr.data.critic import FaceCritic, PerceptualLoss

    torch.manual_seed(0)
    critic = FaceCritic().eval()
    loss = PerceptualLoss(critic)
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    # reference, written apart: the four blocks' outputs caught by hooks, LPIPS' channel normalisation,
    # squared difference summed over channels, averaged over positions and the batch, blocks summed
    caught: list[torch.Tensor] = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: caught.append(out)) for block in critic.trunk]
    with torch.no_grad():
        critic(torch.cat([a, b]))
    for h in hooks:
        h.remove()
    assert [f.shape[-1] for f in caught] == [32, 16, 8, 4]
    ref = sum(
        (((f / (f.norm(dim=1, keepdim=True) + 1e-10))[:2] - (f / (f.norm(dim=1, keepdim=True) + 1e-10))[2:]) ** 2).sum(1).mean()
        for f in caught
    )
    torch.testing.assert_close(loss(a, b), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss(b, a), loss(a, b))
    assert float(loss(a, a)) == 0.0 and float(loss(a, b)) > 0.1
    # 128 px images are area-pooled to the critic's 64 px first
    big = a.repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(loss(big, b.repeat_interleave(2, -1).repeat_interleave(2, -2)), loss(a, b), atol=1e-5, rtol=1e-5)
    # gradients reach the image, not the frozen critic
    x = a.clone().requires_grad_(True)
    loss(x, b).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in critic.parameters())
    with pytest.raises(ValueError, match="differ in shape"):
        loss(a, b[:1])


def test_encoder_training_logs_the_perceptual_term_on_samples_and_real_images(single_thread):
    from cptr.data.critic import FaceCritic, PerceptualLoss

    g = make_tiny_generator(size=32)
    torch.manual_seed(0)
    enc = Encoder(**small_encoder_config(g.n_latent, g.style_dim, input_size=32, width=16), latent_avg=generator_mean_latent(g))
    real = iter(lambda: torch.rand(4, 3, 32, 32) * 2 - 1, None)
    perceptual = PerceptualLoss(FaceCritic().eval())
    hist = train_encoder(
        enc, g, steps=2, batch=4, weights=EncoderLossWeights(id=0.0, perceptual=0.8), real_images=real, perceptual_loss=perceptual
    )
    assert {"latent", "l2", "perceptual", "real_l2", "real_perceptual"} <= set(hist[0])
    total = hist[0]["latent"] + hist[0]["l2"] + 0.8 * hist[0]["perceptual"] + hist[0]["real_l2"] + 0.8 * hist[0]["real_perceptual"]
    assert hist[0]["loss"] == pytest.approx(total, rel=1e-5)
    off = train_encoder(enc, g, steps=1, batch=4, weights=EncoderLossWeights(id=0.0, perceptual=0.0), perceptual_loss=perceptual)
    assert "perceptual" not in off[0]


def test_delta_regularisation_keeps_w_plus_near_w(single_thread):
    """e4e's delta term: 0 for one repeated w, the mean squared offset otherwise; logged and added to the loss; and
    with it on, the same training leaves W+ entries closer to entry 0 than without it (measured: several times)."""
    w = torch.randn(3, 1, 8).repeat(1, 6, 1)
    assert float(delta_penalty(w)) == 0.0
    w[:, 2] += 1.0
    assert float(delta_penalty(w)) == pytest.approx(1 / 5)
    g = make_tiny_generator(size=32)
    spread = {}
    for delta in (0.0, 10.0):
        torch.manual_seed(0)
        enc = Encoder(**small_encoder_config(g.n_latent, g.style_dim, input_size=32, width=16), latent_avg=generator_mean_latent(g))
        real = iter(lambda: torch.rand(4, 3, 32, 32) * 2 - 1, None)
        hist = train_encoder(
            enc, g, steps=12, batch=4, lr=3e-3, weights=EncoderLossWeights(id=0.0, perceptual=0.0, delta=delta), real_images=real
        )
        if delta:
            assert hist[0]["loss"] == pytest.approx(
                hist[0]["latent"] + hist[0]["l2"] + hist[0]["real_l2"] + delta * hist[0]["delta"], rel=1e-5
            )
        else:
            assert "delta" not in hist[0]
        with torch.no_grad():
            spread[delta] = float(delta_penalty(enc(torch.rand(8, 3, 32, 32) * 2 - 1)))
    assert spread[10.0] < 0.5 * spread[0.0], spread


def test_attribute_match_loss_compares_the_critics_geometry_and_joins_the_encoder_loss(single_thread):
    """The critic's pose/expression/shape attributes, matched between reconstruction and image: 0 for the same
    images, the mean squared difference of exactly those attributes otherwise, gradient to the images only; and in
    train_encoder it is logged and added to the loss with its weight."""
    from cptr.data.critic import AttributeMatchLoss, FaceCritic
    from cptr.data.faces import ATTRIBUTES, GEOMETRY

    torch.manual_seed(0)
    critic = FaceCritic().eval()
    loss = AttributeMatchLoss(critic)
    a, b = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    assert float(loss(a, a)) == 0.0
    idx = [ATTRIBUTES.index(n) for n in GEOMETRY]
    with torch.no_grad():
        expected = (critic(a).attributes[:, idx] - critic(b).attributes[:, idx]).pow(2).mean()
    a.requires_grad_(True)
    value = loss(a, b)
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-5) and float(value.detach()) > 0
    value.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0 and all(p.grad is None for p in critic.parameters())
    assert "skin_tone" not in GEOMETRY and float(AttributeMatchLoss(critic, ("skin_tone",))(a, b)) != pytest.approx(float(value.detach()))
    with pytest.raises(ValueError, match="unknown critic attribute"):
        AttributeMatchLoss(critic, ("height",))
    with pytest.raises(ValueError, match="differ in shape"):
        loss(a, b[:2])

    g = make_tiny_generator(size=32)
    enc = Encoder(**small_encoder_config(g.n_latent, g.style_dim, input_size=32, width=16), latent_avg=generator_mean_latent(g))
    real = iter(lambda: torch.rand(4, 3, 32, 32) * 2 - 1, None)
    weights = EncoderLossWeights(id=0.0, perceptual=0.0, attributes=3.0)
    hist = train_encoder(enc, g, steps=2, batch=4, lr=1e-3, weights=weights, real_images=real, attribute_loss=loss)
    h = hist[0]
    assert h["attributes"] > 0 and h["real_attributes"] > 0
    assert h["loss"] == pytest.approx(h["latent"] + h["l2"] + h["real_l2"] + 3.0 * (h["attributes"] + h["real_attributes"]), rel=1e-5)


def test_cptr_train_encoder_takes_perceptual_weights_and_refuses_bad_ones(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    from cptr.data.critic import FaceCritic, save_critic
    from cptr.data.render import render_batch
    from cptr.models.checkpoints import save_generator

    save_generator(make_tiny_generator(size=32), tmp_path / "g.pt")
    torch.manual_seed(0)
    save_critic(FaceCritic(), tmp_path / "perceptual.pt")
    (tmp_path / "faces").mkdir()
    for i, im in enumerate(render_batch(range(4), "photo", 64)[0]):
        Image.fromarray(im).save(tmp_path / "faces" / f"{i}.png")
    base = [
        sys.executable,
        "-m",
        "cptr.training",
        "encoder",
        "--generator",
        str(tmp_path / "g.pt"),
        "--width",
        "small",
        "--work-size",
        "32",
        "--images",
        str(tmp_path / "faces"),
        "--steps",
        "2",
        "--batch",
        "2",
        "--sample-every",
        "0",
        "--save-every",
        "0",
        "--lambda-id",
        "0",
        "--no-register",
        "--device",
        "cpu",
        "--quiet",
    ]
    for run, extra, stored, value in (
        ("run", "--lambda-perceptual", "lpips_lambda", 0.5),
        ("attr", "--lambda-attributes", "attributes_lambda", 0.3),
    ):
        weights = ["--perceptual-weights", str(tmp_path / "perceptual.pt"), extra, str(value)]
        r = subprocess.run(base + ["--out", str(tmp_path / run), *weights], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert torch.load(tmp_path / run / "checkpoints" / "encoder.pt", weights_only=True)["opts"][stored] == value
    r = subprocess.run(base + ["--out", str(tmp_path / "bad"), "--lambda-attributes", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "give --perceptual-weights" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    for bad in (tmp_path / "absent.pt", tmp_path / "junk.pt"):
        r = subprocess.run(
            base + ["--out", str(tmp_path / "bad"), "--perceptual-weights", str(bad)], capture_output=True, text=True, timeout=300
        )
        assert r.returncode != 0 and "--perceptual-weights" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "bad" / "checkpoints" / "encoder.pt").exists()
