"""rosinality .pt and NVlabs .pkl loading, and refusal of bad or hostile files."""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from cptr.models.checkpoints import CheckpointError, load_generator, save_generator
from tests.conftest import PickleBomb, make_tiny_generator


def test_rosinality_round_trip_is_identical(tmp_path: Path) -> None:
    g = make_tiny_generator(64, seed=3)
    latent_avg = g.mean_latent(128).reshape(-1)
    path = tmp_path / "g.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": latent_avg}, path)
    h = load_generator(path)
    assert not h.training
    assert h.size == 64 and h.channels == g.channels and h.n_mlp == 2 and h.style_dim == 64
    torch.testing.assert_close(h.latent_avg, latent_avg, rtol=0, atol=0)
    w = torch.randn(2, g.n_latent, g.style_dim)
    a, _ = g([w], input_is_latent=True, randomize_noise=False)
    b, _ = h([w], input_is_latent=True, randomize_noise=False)
    assert torch.equal(a, b)


def test_save_generator_writes_loadable_file_atomically(tmp_path: Path) -> None:
    g = make_tiny_generator(32)
    path = tmp_path / "out" / "g.pt"
    save_generator(g, path, latent_avg=torch.zeros(g.style_dim))
    assert [p.name for p in path.parent.iterdir()] == ["g.pt"]  # no temp file left behind
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"g_ema", "latent_avg"}
    assert torch.equal(load_generator(path).style[1].weight, g.style[1].weight)


def test_training_checkpoint_with_args_namespace_and_g_only(tmp_path: Path) -> None:
    import argparse

    g = make_tiny_generator(32)
    path = tmp_path / "train.pt"
    torch.save({"g": g.state_dict(), "args": argparse.Namespace(lr_mlp=0.01, size=32)}, path)
    loaded = load_generator(path)
    assert loaded.size == 32 and loaded.n_latent == g.n_latent
    for name, tensor in g.state_dict().items():  # every weight read from "g" (there is no g_ema)
        assert torch.equal(loaded.state_dict()[name], tensor), name
    w = torch.randn(2, loaded.n_latent, g.style_dim)
    with torch.no_grad():
        same = loaded([w], input_is_latent=True, randomize_noise=False)[0], g.eval()([w], input_is_latent=True, randomize_noise=False)[0]
    assert torch.equal(*same)


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty"),
        (b"hello, I am a text file\n" * 10, "not a PyTorch checkpoint"),
    ],
)
def test_non_checkpoints_are_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as e:
        load_generator(path)
    assert str(path) in str(e.value)


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_generator(make_tiny_generator(32), good)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(bad)


def test_wrong_dict_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match="no generator found"):
        load_generator(path)


@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_malicious_pickle_runs_nothing(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    if suffix == ".pt":
        torch.save({"g_ema": PickleBomb(marker)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"G_ema": PickleBomb(marker)}, f)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_generator(path)
    assert not marker.exists()


# ----------------------------------------------------------------- NVlabs-structured pickles


def _install_fake_nvlabs_modules() -> tuple[types.ModuleType, type]:
    """Modules named like NVlabs' so pickle records the same class paths; no NVlabs code."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called by our loader
        raise AssertionError("the real reconstruct hook must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    sys.modules.update(
        {
            "torch_utils": types.ModuleType("torch_utils"),
            "torch_utils.persistence": persistence,
            "dnnlib": types.ModuleType("dnnlib"),
            "dnnlib.util": util,
        }
    )
    return persistence, EasyDict


def _remove_fake_nvlabs_modules() -> None:
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        sys.modules.pop(name, None)


class _Persistent:
    """Pickles exactly like an NVlabs persistent-class module instance."""

    def __init__(self, class_name: str, params=None, buffers=None, modules=None, **attrs):
        self.class_name = class_name
        self.state = {
            "training": False,
            "_parameters": OrderedDict(params or {}),
            "_buffers": OrderedDict(buffers or {}),
            "_modules": OrderedDict(modules or {}),
            **attrs,
        }

    def __reduce__(self):
        meta = {
            "type": "class",
            "version": 4,
            "module_src": "raise SystemExit('module_src must never run')",
            "class_name": self.class_name,
            "state": self.state,
        }
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def _fc(w, b):
    return _Persistent(
        "FullyConnectedLayer",
        {"weight": torch.nn.Parameter(w), "bias": torch.nn.Parameter(b)},
        activation="lrelu",
        lr_multiplier=0.01,
        weight_gain=0.1,
        bias_gain=0.01,
    )


def _nvlabs_g_from(g) -> _Persistent:
    """Lay a tiny rosinality generator's tensors out as NVlabs' G_ema (inverse of our converter)."""
    sd = g.state_dict()
    EasyDict = sys.modules["dnnlib.util"].EasyDict

    def layer(prefix, noise_idx, res):
        return _Persistent(
            "SynthesisLayer",
            {
                "weight": sd[f"{prefix}.conv.weight"][0],
                "noise_strength": sd[f"{prefix}.noise.weight"].reshape(()),
                "bias": sd[f"{prefix}.activate.bias"],
            },
            {"resample_filter": torch.ones(4, 4) / 16, "noise_const": sd[f"noises.noise_{noise_idx}"][0, 0]},
            {"affine": _fc(sd[f"{prefix}.conv.modulation.weight"], sd[f"{prefix}.conv.modulation.bias"])},
            resolution=res,
            up=1,
            activation="lrelu",
        )

    def torgb(prefix):
        return _Persistent(
            "ToRGBLayer",
            {"weight": sd[f"{prefix}.conv.weight"][0], "bias": sd[f"{prefix}.bias"].reshape(3)},
            modules={"affine": _fc(sd[f"{prefix}.conv.modulation.weight"], sd[f"{prefix}.conv.modulation.bias"])},
        )

    blocks = {
        "b4": _Persistent(
            "SynthesisBlock", {"const": sd["input.input"][0]}, modules={"conv1": layer("conv1", 0, 4), "torgb": torgb("to_rgb1")}
        )
    }
    for j in range(len(g.to_rgbs)):
        res = 2 ** (j + 3)
        blocks[f"b{res}"] = _Persistent(
            "SynthesisBlock",
            modules={
                "conv0": layer(f"convs.{2 * j}", 2 * j + 1, res),
                "conv1": layer(f"convs.{2 * j + 1}", 2 * j + 2, res),
                "torgb": torgb(f"to_rgbs.{j}"),
            },
        )
    mapping = _Persistent(
        "MappingNetwork",
        buffers={"w_avg": g.latent_avg},
        modules={f"fc{i}": _fc(sd[f"style.{i + 1}.weight"], sd[f"style.{i + 1}.bias"]) for i in range(g.n_mlp)},
        num_ws=g.n_latent,
        w_avg_beta=0.995,
    )
    synthesis = _Persistent("SynthesisNetwork", modules=blocks, block_resolutions=[2**i for i in range(2, g.log_size + 1)])
    return _Persistent(
        "Generator",
        modules={"mapping": mapping, "synthesis": synthesis},
        _init_kwargs=EasyDict(
            z_dim=g.style_dim,
            w_dim=g.style_dim,
            c_dim=0,
            img_resolution=g.size,
            mapping_kwargs=EasyDict(num_layers=g.n_mlp, lr_multiplier=0.01),
        ),
        z_dim=g.style_dim,
        img_resolution=g.size,
    )


def test_nvlabs_pickle_converts_weights_into_place(tmp_path: Path) -> None:
    g = make_tiny_generator(32, seed=5)
    g.latent_avg = torch.randn(g.style_dim)
    path = tmp_path / "network-snapshot.pkl"
    _install_fake_nvlabs_modules()
    try:
        with open(path, "wb") as f:
            pickle.dump(
                {
                    "G": _nvlabs_g_from(g),
                    "D": None,
                    "G_ema": _nvlabs_g_from(g),
                    "training_set_kwargs": sys.modules["dnnlib.util"].EasyDict(resolution=32),
                },
                f,
            )
    finally:
        _remove_fake_nvlabs_modules()
    assert b"torch_utils.persistence" in path.read_bytes() and b"dnnlib.util" in path.read_bytes()

    h = load_generator(path)
    assert "torch_utils" not in sys.modules  # the loader imported no NVlabs module
    for k, v in g.state_dict().items():
        assert torch.equal(h.state_dict()[k], v), k
    torch.testing.assert_close(h.latent_avg, g.latent_avg)
    w = torch.randn(2, g.n_latent, g.style_dim)
    assert torch.equal(g([w], input_is_latent=True, randomize_noise=False)[0], h([w], input_is_latent=True, randomize_noise=False)[0])


def test_nvlabs_pickle_without_g_ema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G": None}, f)
    with pytest.raises(CheckpointError, match="no network 'G_ema'"):
        load_generator(path)


@pytest.mark.parametrize(
    "module",
    [
        "cptr.models.checkpoints",
        "cptr.models",
        "cptr.models.mapper",
        "cptr.models.encoder",
        "cptr.styles",
        "cptr.export.cli",
        "cptr.training.cli",
        "cptr.cli",
        "cptr.align",
        "cptr.client",
    ],
)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Import cycles only show when a module is the first one imported; a shared test process hides them."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
