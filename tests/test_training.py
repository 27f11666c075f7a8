"""FreezeSG fine-tuning: freezing, structure loss, ADA, data, checkpoints, resume, crash safety, DDP.

Everything runs a real tiny model (32 px, TINY_CHANNELS, style_dim 64, n_mlp 2) on real image
files; the fault and distributed tests run real subprocesses (SIGKILL, torchrun with gloo).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cptr.helptext import flags
from cptr.models import Discriminator
from cptr.models.checkpoints import load_generator, load_torch_file, save_generator
from cptr.models.encoder import Encoder, save_encoder, small_encoder_config
from cptr.styles.blend import parameter_resolution
from cptr.training.augment import AdaptiveAugment, augment, sample_augment_params
from cptr.training.checkpointing import SAVE_PAUSE_ENV, checkpoint_path, list_checkpoints, load_checkpoint
from cptr.training.config import FinetuneConfig
from cptr.training.data import (
    ImageFolderDataset,
    LMDBDataset,
    StepBatchSampler,
    lmdb_key,
    open_dataset,
    resize_center_crop,
    to_tensor,
    write_lmdb,
)
from cptr.training.distributed import DistInfo
from cptr.training.encoder_train import generator_mean_latent
from cptr.training.finetune import Finetuner, encoded_latents, finetune
from cptr.training.freeze import FreezePlan, apply_trainable, freezesg_latents, generator_trainable
from cptr.training.losses import d_logistic_loss, structure_loss, structure_resolutions
from cptr.training.monitor import read_log
from cptr.training.rng import StepRandom, capture_rng_state, restore_rng_state
from cptr.training.synthesis import make_noise, synthesize
from tests.conftest import TINY_CHANNELS, make_tiny_generator
from tests.tiny import IN_PROCESS, TINY_FREEZESG

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
# The tiny run every stateful test shares: FreezeS 2, FreezeG 2 (4 and 8 px frozen), FreezeD 1,
# structure loss at 8 and 16 px, ADA (fast: 200 images from p=0 to 1), R1, path length.
RUN = dict(
    **TINY_FREEZESG,
    iters=20,
    batch=4,
    ada_length=200,
    sample_every=10,
    save_every=10,
    keep=0,
    log_every=5,
    **IN_PROCESS,
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"  # as in this process (see one_thread)
    env.update(extra)
    return env


def _write_images(root: Path, n: int = 10) -> None:
    rng = np.random.default_rng(0)
    (root / "nested" / "deeper").mkdir(parents=True)
    yy, xx = np.mgrid[0:40, 0:48]
    for i in range(n):
        a = np.stack([xx * 5 + 10 * i, yy * 6, (xx + yy) * 3], -1) % 256
        a = (a + rng.integers(0, 40, a.shape)).clip(0, 255).astype(np.uint8)  # 48x40: resized + centre-cropped
        sub = [root, root / "nested", root / "nested" / "deeper"][i % 3]
        Image.fromarray(a).save(sub / f"img{i}.{'jpg' if i % 2 else 'png'}", quality=95)
    (root / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG")
    (root / "notes.txt").write_text("not an image")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the suite shares 2 cores with other jobs, where 2 threads thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("finetune")
    g = make_tiny_generator(SIZE)
    torch.manual_seed(1)
    d = Discriminator(SIZE, channels=TINY_CHANNELS)
    save_generator(g, ws / "source.pt", extra={"d": d.state_dict()})
    _write_images(ws / "images")
    return ws


@pytest.fixture(scope="module")
def reference(workspace):
    """The uninterrupted 20-iteration run (checkpoints at 10 and 20)."""
    cfg = FinetuneConfig(source=str(workspace / "source.pt"), data=str(workspace / "images"), out=str(workspace / "ref"), **RUN)
    result = finetune(cfg)
    return cfg, result


def _assert_same_state(a: dict, b: dict, atol: float = 0.0) -> float:
    """Every tensor of g, d, g_ema and both optimisers equal (bitwise when atol == 0); returns max diff."""
    worst = 0.0
    for key in ("g", "d", "g_ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            diff = (a[key][k].double() - b[key][k].double()).abs().max().item()
            worst = max(worst, diff)
            if atol == 0:
                assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs by {diff}"
            else:
                assert diff <= atol, f"{key}.{k} differs by {diff} > {atol}"
    if atol == 0:
        for key in ("g_optim", "d_optim"):
            for idx, st in a[key]["state"].items():
                for name, t in st.items():
                    assert torch.equal(t, b[key]["state"][idx][name]), f"{key} state {idx}.{name} differs"
    return worst


# --------------------------------------------------------------------------- building blocks


def test_synthesize_equals_generator_forward():
    g = make_tiny_generator(SIZE)
    torch.manual_seed(3)
    w_plus = g.get_latent(torch.randn(3, g.style_dim))[:, None].repeat(1, g.n_latent, 1) + 0.3 * torch.randn(3, g.n_latent, g.style_dim)
    noise = make_noise(g, 3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = g([w_plus], input_is_latent=True, noise=noise)
        out = synthesize(g, w_plus, noise)
        ref_const, _ = g([w_plus], input_is_latent=True, randomize_noise=False)
        out_const = synthesize(g, w_plus)
    assert torch.equal(out.image, ref) and torch.equal(out_const.image, ref_const)
    assert sorted(out.rgb) == [4, 8, 16, 32] and out.rgb[32] is out.image
    assert out.features[16].shape == (3, TINY_CHANNELS[16], 16, 16)


@pytest.mark.parametrize("target", ["rgb", "features"])
def test_structure_loss_reaches_exactly_the_low_resolution_layers(target):
    g, source = make_tiny_generator(SIZE, seed=0), make_tiny_generator(SIZE, seed=1)
    apply_trainable(g, generator_trainable(g, FreezePlan(freeze_style=0, freeze_g=0, freeze_d=0)))
    res = structure_resolutions(SIZE, 1)
    assert res == [8]
    w_plus = source.get_latent(torch.randn(2, 64))[:, None].repeat(1, g.n_latent, 1).detach()
    noise = make_noise(g, 2, torch.Generator().manual_seed(1))
    out = synthesize(g, w_plus, noise)
    with torch.no_grad():
        src = synthesize(source, w_plus, noise, max_resolution=8)
    loss = structure_loss(getattr(out, target), getattr(src, target), res)
    loss.backward()
    for name, p in g.named_parameters():
        r = parameter_resolution(name, g)
        grad = 0.0 if p.grad is None else p.grad.abs().sum().item()
        feeds = r is not None and r <= 8 and (target == "rgb" or "to_rgb" not in name)
        if name.startswith("style."):
            assert p.grad is None, name  # the mapping network is frozen
        elif feeds:
            assert grad > 0, f"{name} ({r} px) feeds the {target} structure loss but got no gradient"
        else:
            assert grad == 0, f"{name} ({r} px) must not receive structure-loss gradient, got {grad}"


def test_freezesg_latents_take_the_first_k_entries_from_the_source():
    g = make_tiny_generator(SIZE)
    z1, z2 = torch.randn(2, 64), torch.randn(2, 64)
    src, tgt = freezesg_latents(g.style, g.n_latent, z1, z2, crossover=5, freeze_style=3)
    w1, w2 = g.style(z1), g.style(z2)
    assert torch.equal(src[:, :5], w1[:, None].expand(-1, 5, -1)) and torch.equal(src[:, 5:], w2[:, None].expand(-1, g.n_latent - 5, -1))
    assert torch.equal(tgt[:, :3], src[:, :3]) and torch.equal(tgt[:, 3:], w1[:, None].expand(-1, g.n_latent - 3, -1))
    src, tgt = freezesg_latents(g.style, g.n_latent, z1, z2, crossover=2, freeze_style=4)  # mixing inside the frozen entries
    assert torch.equal(tgt[:, :4], src[:, :4]) and torch.equal(tgt[:, 4:], w1[:, None].expand(-1, g.n_latent - 4, -1))
    src, tgt = freezesg_latents(g.style, g.n_latent, z1, None, None, freeze_style=2)
    assert torch.equal(src, tgt)
    src, tgt = freezesg_latents(g.style, g.n_latent, z1, z2, crossover=5, freeze_style=0)  # FreezeS off: plain mixing
    assert torch.equal(src, tgt) and not torch.equal(tgt[:, 5], tgt[:, 4])
    with pytest.raises(ValueError, match="freeze_g"):
        FreezePlan(freeze_g=4).validate(g)  # a 32 px generator has 4 resolutions: freezing all trains nothing


def test_augment_is_identity_at_p0_exact_flips_and_differentiable():
    x = torch.randn(6, 3, 16, 16)
    assert torch.equal(augment(x, sample_augment_params(6, 0.0, 16, torch.Generator().manual_seed(0))), x)
    params = sample_augment_params(6, 1.0, 16, torch.Generator().manual_seed(1), transforms=("xflip",))
    y = augment(x, params)
    for i in range(6):
        expect = x[i].flip(-1) if params.geom_active[i] else x[i]
        torch.testing.assert_close(y[i], expect, atol=1e-5, rtol=0)
    assert 0 < int(params.geom_active.sum()) < 6
    a = sample_augment_params(8, 0.7, 16, torch.Generator().manual_seed(2))
    b = sample_augment_params(8, 0.7, 16, torch.Generator().manual_seed(2))
    assert torch.equal(a.geom, b.geom) and torch.equal(a.color, b.color)
    xr = x.clone().requires_grad_(True)
    out = augment(xr, sample_augment_params(6, 0.8, 16, torch.Generator().manual_seed(3)))
    (g,) = torch.autograd.grad(out.square().sum(), xr, create_graph=True)  # R1 needs double backward
    g.square().sum().backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0


def test_ada_p_rises_for_an_overfitting_discriminator_and_falls_for_a_fooled_one():
    torch.manual_seed(0)
    d = Discriminator(SIZE, channels=TINY_CHANNELS)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.0, 0.99))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    reals = torch.stack([torch.stack([xx * (0.5 + 0.1 * i), yy, xx * yy]) for i in range(8)])
    for _ in range(25):  # memorise 8 reals against noise: the overfitting regime ADA must detect
        loss = d_logistic_loss(d(reals), d(torch.randn(8, 3, SIZE, SIZE) * 0.5))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        real_pred = d(reals)
    assert (real_pred > 0).float().mean() >= 0.8
    ada = AdaptiveAugment(target=0.6, length=1000, interval=4)
    ps = [ada.update(real_pred) for _ in range(8)]
    assert ada.r_t > 0.6 and ps[3] == pytest.approx(0.032) and ps[-1] == pytest.approx(0.064)
    fooled = AdaptiveAugment(target=0.6, length=1000, interval=4, p=0.5)
    for _ in range(4):
        fooled.update(-real_pred)
    assert fooled.r_t < 0.6 and fooled.p == pytest.approx(0.5 - 0.032)
    state = fooled.state_dict()
    again = AdaptiveAugment()
    again.load_state_dict(state)
    assert again.p == fooled.p


def test_rng_state_round_trips_through_a_weights_only_checkpoint():
    import random

    state = capture_rng_state()
    draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    buf = io.BytesIO()
    torch.save({"rng": state}, buf)
    buf.seek(0)
    restore_rng_state(torch.load(buf, weights_only=True)["rng"])
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


def test_datasets_folder_lmdb_and_sampler(workspace, tmp_path):
    folder = ImageFolderDataset(workspace / "images", SIZE)
    assert len(folder) == 10 and [p.name for p in folder.skipped] == ["broken.jpg"]
    x = folder[0]
    assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    n, skipped = write_lmdb(workspace / "images", tmp_path / "data.lmdb", sizes=(SIZE, 64))
    assert (n, skipped) == (10, 1)
    import lmdb

    with lmdb.open(str(tmp_path / "data.lmdb"), readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"length") == b"10" and txn.get(lmdb_key(64, 9)) is not None and lmdb_key(SIZE, 3) == b"32-00003"
    lm = open_dataset(tmp_path / "data.lmdb", SIZE)
    assert isinstance(lm, LMDBDataset) and len(lm) == 10
    buf = io.BytesIO()  # what rosinality's prepare_data.py stores: the resized crop as JPEG, quality 100
    with Image.open(folder.files[3]) as im:
        resize_center_crop(im, SIZE).save(buf, format="JPEG", quality=100)
    assert torch.equal(lm[3], to_tensor(Image.open(buf)))
    with pytest.raises(ValueError, match="sizes stored: 32, 64"):
        LMDBDataset(tmp_path / "data.lmdb", 128)
    single = StepBatchSampler(10, 8, seed=5)
    shards = [StepBatchSampler(10, 8, seed=5, rank=r, world_size=2) for r in range(2)]
    for step in (0, 1, 7):
        glob = single.indices(step)
        assert sorted(glob) == sorted(shards[0].indices(step) + shards[1].indices(step))
        assert shards[1].indices(step) == glob[1::2]
    first_epoch = single.indices(0) + single.indices(1)[:2]
    assert sorted(first_epoch) == list(range(10))  # every image once per epoch


def test_cli_help_and_clear_errors(workspace, tmp_path):
    from typer.testing import CliRunner

    from cptr.training.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["finetune", "--help"])
    assert res.exit_code == 0 and "--freeze-style" in res.output and "Examples" in res.output
    res = runner.invoke(app, ["finetune", "--out", str(tmp_path / "x"), "--data", str(workspace / "images")])
    assert res.exit_code == 2 and "--source is required" in res.output
    paths = flags(source=workspace / "source.pt", data=workspace / "images", out=tmp_path / "y")
    res = runner.invoke(app, ["finetune", *paths, *flags(freeze_g=9, device="cpu"), "--quiet"])
    assert res.exit_code == 2 and "freeze_g must be in [0, 3]" in res.output


# --------------------------------------------------------------------------- a real run


def test_frozen_parameters_are_bitwise_unchanged_and_the_rest_trained(workspace, reference):
    cfg, result = reference
    assert result.checkpoint == checkpoint_path(cfg.out, 20)
    ckpt = load_checkpoint(result.checkpoint)
    src = load_torch_file(workspace / "source.pt")
    g = make_tiny_generator(SIZE)
    trainable = generator_trainable(g, FreezePlan(2, 2, 1))
    assert {n for n, t in trainable.items() if not t} >= {"style.1.weight", "conv1.conv.weight", "to_rgbs.0.bias", "convs.1.conv.weight"}
    for name, train in trainable.items():
        for key in ("g", "g_ema"):
            same = torch.equal(ckpt[key][name], src["g_ema"][name])
            assert same != train, f"{key}.{name}: {'frozen but changed' if not train else 'trainable but unchanged'}"
    for name, value in ckpt["d"].items():
        frozen = name.startswith(("convs.0.", "convs.1."))
        if name.endswith(".kernel"):
            continue
        assert torch.equal(value, src["d"][name]) == frozen, f"d.{name}"
    for k, v in ckpt["g"].items():
        if k.startswith("noises.") or k.endswith(".kernel"):
            assert torch.equal(v, src["g_ema"][k])  # buffers are constants


def test_noise_off_zeroes_and_freezes_every_noise_strength(workspace, reference, tmp_path):
    """``--noise off``: every NoiseInjection weight is 0 in g and g_ema for the whole run, the rest
    still trains; with the default (train) the trainable noise strengths move away from the source's."""
    src = load_torch_file(workspace / "source.pt")["g_ema"]
    noise_names = [n for n in src if n.endswith("noise.weight")]
    assert noise_names and all(src[n].abs().max() > 0 for n in noise_names)  # the source has non-zero noise
    cfg = FinetuneConfig(
        source=str(workspace / "source.pt"),
        data=str(workspace / "images"),
        out=str(tmp_path / "off"),
        **dict(RUN, iters=4, save_every=4, sample_every=4),
        noise="off",
    )
    ckpt = load_checkpoint(finetune(cfg).checkpoint)
    for key in ("g", "g_ema"):
        for n in noise_names:
            assert torch.count_nonzero(ckpt[key][n]) == 0, f"{key}.{n} is not silenced"
    assert not torch.equal(ckpt["g"]["convs.3.conv.weight"], src["convs.3.conv.weight"])  # the rest trains
    trained = load_checkpoint(reference[1].checkpoint)
    moved = [n for n in noise_names if not torch.equal(trained["g"][n], src[n])]
    assert moved == [n for n in noise_names if not n.startswith(("conv1.", "convs.0.", "convs.1."))]  # all but 4 and 8 px (FreezeG 2)
    with pytest.raises(ValueError, match="--noise"):
        FinetuneConfig(
            source=str(workspace / "source.pt"), data=str(workspace / "images"), out=str(tmp_path / "x"), noise="loud"
        ).validate()


def test_losses_finite_logs_samples_and_ada(reference):
    cfg, result = reference
    rows = read_log(Path(cfg.out) / "log.csv")
    assert [int(r["iter"]) for r in rows] == [5, 10, 15, 20]
    for r in rows:
        for k in ("d", "g", "structure", "r1", "path", "real_score", "fake_score", "sec_per_iter"):
            assert np.isfinite(r[k]), (k, r)
    assert rows[-1]["ada_p"] > 0  # a fresh discriminator on 10 images: r_t > 0.6, p goes up
    assert sorted(p.name for p in (Path(cfg.out) / "samples").iterdir()) == ["000010.png", "000020.png"]
    with Image.open(Path(cfg.out) / "samples" / "000020.png") as im:
        assert im.size == (8 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2)  # source row above target row
    assert len(result.skipped_files) == 1 and result.skipped_files[0].endswith("broken.jpg")


def test_checkpoint_is_rosinality_format_and_loads_and_blends(workspace, reference):
    cfg, result = reference
    ckpt = load_torch_file(result.checkpoint)  # weights_only=True
    for key in ("g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p", "iter", "latent_avg", "rng"):
        assert key in ckpt, key
    assert isinstance(ckpt["args"], dict) and ckpt["args"]["freeze_g"] == 2 and ckpt["iter"] == 20
    assert isinstance(ckpt["ada_aug_p"], float) and ckpt["ada_aug_p"] == ckpt["ada"]["p"]
    target = load_generator(result.checkpoint)
    source = load_generator(workspace / "source.pt")
    w = source.get_latent(torch.randn(2, 64))
    with torch.no_grad():
        a, _ = target([w], input_is_latent=True, randomize_noise=False)
        b, _ = source([w], input_is_latent=True, randomize_noise=False)
    assert torch.isfinite(a).all() and (a - b).abs().max() > 1e-4
    from cptr.styles import blend_generators

    blended = blend_generators(source, target, alpha=1.0)
    with torch.no_grad():
        c, _ = blended([w], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(c, a, atol=1e-6, rtol=0)


def test_resume_gives_the_same_weights_as_the_uninterrupted_run(workspace, reference, tmp_path):
    cfg, result = reference
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint_path(cfg.out, 10), out / "checkpoints" / "000010.pt")
    resumed_cfg = FinetuneConfig(**{**vars(cfg), "out": str(out), "resume": True, "keep": 1})
    res = finetune(resumed_cfg)
    assert res.start_iter == 10
    assert [p.name for p in list_checkpoints(out)] == ["000020.pt"]  # --keep 1 pruned 000010.pt
    _assert_same_state(load_checkpoint(res.checkpoint), load_checkpoint(result.checkpoint))
    with pytest.raises(ValueError, match="lr: checkpoint 0.002, now 0.001"):
        finetune(FinetuneConfig(**{**vars(resumed_cfg), "lr": 0.001, "iters": 30}))


def test_sigkill_while_writing_a_checkpoint_keeps_the_last_good_one(workspace, reference, tmp_path):
    cfg, result = reference
    out = tmp_path / "crash"
    args = [sys.executable, "-m", "cptr.training", "finetune", "--source", cfg.source, "--data", cfg.data, "--out", str(out)]
    proc = subprocess.Popen(
        args + flags(**RUN), env=_env(**{SAVE_PAUSE_ENV: "20:120"}), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ckdir = out / "checkpoints"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            tmps = [p for p in ckdir.glob(".000020.pt.*.tmp") if p.stat().st_size > 0] if ckdir.is_dir() else []
            if tmps or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the trainer exited early: {proc.stderr.read().decode()[-2000:]}"
        assert tmps, "the checkpoint at iteration 20 never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in list_checkpoints(out)] == ["000010.pt"]  # the half-written file has no checkpoint name
    assert any(ckdir.glob(".*.tmp"))
    assert load_checkpoint(ckdir / "000010.pt")["iter"] == 10
    res = finetune(FinetuneConfig(**{**vars(cfg), "out": str(out), "resume": True}))
    assert res.start_iter == 10 and not any(ckdir.glob(".*.tmp"))
    _assert_same_state(load_checkpoint(res.checkpoint), load_checkpoint(result.checkpoint))  # bitwise


def test_torchrun_two_processes_match_one_process_with_the_same_global_batch(workspace, tmp_path):
    write_lmdb(workspace / "images", tmp_path / "data.lmdb", sizes=(SIZE,))
    common = dict(RUN, iters=6, save_every=6, sample_every=6, log_every=2)
    base = ["--source", str(workspace / "source.pt"), "--data", str(tmp_path / "data.lmdb")]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cptr.training", "finetune"]
    proc = subprocess.run(
        torchrun + base + ["--out", str(tmp_path / "ddp")] + flags(**dict(common, batch=4)),
        env=_env(OMP_NUM_THREADS="1"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = finetune(FinetuneConfig(source=base[1], data=base[3], out=str(tmp_path / "single"), **dict(common, batch=8)))
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "000006.pt")
    one = load_checkpoint(single.checkpoint)
    assert ddp["world_size"] == 2 and ddp["args"]["global_batch"] == one["args"]["global_batch"] == 8
    digests = ddp["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks hold bit-identical g, d, g_ema
    src = load_torch_file(workspace / "source.pt")
    moved = max((ddp["g"][k] - src["g_ema"][k]).abs().max().item() for k in ddp["g"])
    assert moved > 1e-3
    # Same samples, latents, noise, augmentations and stddev groups; only the gradient sums are
    # ordered differently (two half-batch sums averaged by gloo), so the weights agree to rounding.
    worst = _assert_same_state(ddp, one, atol=1e-4)
    assert ddp["ada_aug_p"] == one["ada_aug_p"]
    torch.testing.assert_close(ddp["mean_path_length"], one["mean_path_length"], atol=1e-6, rtol=1e-5)
    print(f"torchrun 2x4 vs 1x8 after 6 iterations: max |diff| {worst:.3g} (weights moved up to {moved:.3g})")


def test_encoder_fraction_trains_on_the_encoders_latents_through_the_cli(workspace, tmp_path):
    """``--encoder-fraction``: at 1.0 every W+ of a step is one of the encoder's W+ of the photos (source
    and target alike); through the CLI the run's checkpoint reloads with the safe loader (its options
    are stored as plain strings) and a resume keeps the setting locked."""
    g = load_generator(workspace / "source.pt")
    torch.manual_seed(3)
    enc = Encoder(**small_encoder_config(g.n_latent, g.style_dim, input_size=32, width=16), latent_avg=generator_mean_latent(g)).eval()
    enc_path = save_encoder(enc, tmp_path / "enc.pt")
    bank = encoded_latents(enc, workspace / "images", 100, torch.device("cpu"))
    assert bank.shape == (10, g.n_latent, g.style_dim)  # every readable image, in file order
    cfg = FinetuneConfig(
        source=str(workspace / "source.pt"),
        data=str(workspace / "images"),
        out=str(tmp_path / "unit"),
        **dict(RUN, iters=2),
        encoder=str(enc_path),
        encoder_images=str(workspace / "images"),
        encoder_fraction=1.0,
    )
    tuner = Finetuner(cfg, DistInfo())
    assert torch.equal(tuner.bank, bank)
    wp_src, wp_tgt, _ = tuner._latents(StepRandom(0, 5), "g", 4, torch.arange(4))
    for row in range(4):
        hits = (bank - wp_tgt[row]).flatten(1).abs().amax(1) == 0
        assert hits.any(), f"W+ {row} is not one of the encoder's"
    assert torch.equal(wp_src, wp_tgt)  # FreezeS has nothing to mix: the served W+ goes to both
    with pytest.raises(ValueError, match="--encoder-images"):
        FinetuneConfig(source="s.pt", data="d", encoder_fraction=0.5).validate()

    args = dict(
        RUN, quiet=False, iters=2, save_every=2, sample_every=2, encoder=enc_path, encoder_images=workspace / "images", encoder_fraction=0.5
    )
    paths = flags(source=workspace / "source.pt", data=workspace / "images", out=tmp_path / "cli")
    cmd = [sys.executable, "-m", "cptr.training", "finetune", *paths, *flags(**args)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "encoder latents: 10 photos" in done.stderr
    ckpt = list_checkpoints(tmp_path / "cli")[-1]
    stored = load_torch_file(ckpt)["args"]  # the safe (weights-only) loader
    assert stored["encoder_fraction"] == 0.5 and stored["encoder"] == str(Path(enc_path).resolve())
    load_generator(ckpt)
    cmd_more = [c if c != "0.5" else "0.25" for c in cmd]
    again = subprocess.run([*cmd_more, "--resume"], env=_env(), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 2 and "encoder_fraction" in again.stderr


def test_attribute_loss_joins_the_generator_step_and_needs_its_critic(workspace, tmp_path):
    """``--attribute-weight``: the critic's pose/expression/shape readings of the target's images are pulled to
    those of the source's images of the same W+; the term is logged, reaches the trained weights (one step with
    and without it differs, with the same seed and data), and the option refuses to run without its critic."""
    from cptr.data.critic import FaceCritic, save_critic

    with pytest.raises(ValueError, match="--attribute-critic"):
        FinetuneConfig(source="s.pt", data="d", attribute_weight=1.0).validate()
    with pytest.raises(ValueError, match="attribute-weight must be >= 0"):
        FinetuneConfig(source="s.pt", data="d", attribute_weight=-1.0, attribute_critic="c.pt").validate()
    torch.manual_seed(0)
    save_critic(FaceCritic(), tmp_path / "critic.pt")
    real = torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    weights, stats = {}, {}
    for w in (0.0, 5.0):
        cfg = FinetuneConfig(
            source=str(workspace / "source.pt"),
            data=str(workspace / "images"),
            out=str(tmp_path / f"run{w}"),
            **dict(RUN, iters=1, path_reg=0.0),
            attribute_weight=w,
            attribute_critic=str(tmp_path / "critic.pt") if w else "",
        )
        tuner = Finetuner(cfg, DistInfo())
        assert (tuner.attributes is not None) == bool(w)
        first = tuner.step(0, real)  # the target starts as the source's copy: nothing to match yet
        assert float(first.get("attributes", 0.0)) == 0.0
        stats[w] = tuner.step(1, real)
        weights[w] = torch.cat([p.detach().flatten() for p in tuner.g.parameters()])
    assert "attributes" not in stats[0.0] and float(stats[5.0]["attributes"]) > 0
    assert torch.equal(stats[0.0]["g"], stats[5.0]["g"])  # the same weights before step 1 (step 0's term was 0)
    assert not torch.equal(weights[0.0], weights[5.0])


def test_a_resumed_log_written_with_older_columns_is_rewritten_with_the_new_ones(tmp_path):
    """A run resumed from a log.csv without today's columns (before ``attributes``) keeps its rows, gains the
    column (empty there), and the rows written next line up with the header."""
    from cptr.training.monitor import LOG_COLUMNS, CSVLog

    old = [c for c in LOG_COLUMNS if c != "attributes"]
    (tmp_path / "log.csv").write_text(",".join(old) + "\n" + "\n".join(",".join(str(i) for _ in old) for i in (10, 20)) + "\n")
    log = CSVLog(tmp_path / "log.csv", start_iter=20)
    log.write({"iter": 30, "d": 1.5, "attributes": 0.25})
    rows = read_log(tmp_path / "log.csv")
    assert [r["iter"] for r in rows] == [10, 20, 30] and tuple(rows[0]) == LOG_COLUMNS
    assert np.isnan(rows[1]["attributes"]) and rows[1]["d"] == 20 and rows[2]["attributes"] == 0.25 and rows[2]["d"] == 1.5
