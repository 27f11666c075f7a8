"""CLIP (shim, tokenizer, safe TorchScript reading) and ArcFace IR-SE loaders, losses and their errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from cptr.models.arcface import Backbone, IDLoss, face_crop_box, load_arcface
from cptr.models.checkpoints import CheckpointError
from cptr.models.clip_loss import CLIPLoss, clip_preprocess
from cptr.models.clip_shim import (
    WeightsNotFoundError,
    clip_model_module,
    clip_tokenizer_module,
    load_clip,
    read_torchscript_tensors,
    tokenize,
)
from tests.conftest import PickleBomb

TINY_CLIP = dict(
    embed_dim=64,
    image_resolution=32,
    vision_layers=2,
    vision_width=64,
    vision_patch_size=16,
    context_length=77,
    vocab_size=49408,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
)


def tiny_clip(seed: int = 1):
    torch.manual_seed(seed)
    return clip_model_module().CLIP(**TINY_CLIP).eval()


def tiny_arcface(seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    net = Backbone(112, mode="ir_se", units=(1, 1, 1, 1), widths=(8, 16, 16, 32), embedding_dim=32)
    with torch.no_grad():  # non-trivial running statistics
        net.train()
        net(torch.randn(4, 3, 112, 112))
    return net.eval()


def test_clip_shim_does_not_import_clip_or_torchvision():
    code = (
        "import sys; from cptr.models.clip_shim import clip_model_module, tokenize; clip_model_module(); tokenize('hi');"
        "print('clip' in sys.modules, 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_real_tokenizer_round_trip():
    ids = tokenize("a really angry face")
    assert ids.shape == (1, 77) and ids.dtype == torch.long
    n = int((ids[0] != 0).sum())
    assert ids[0, 0] == 49406 and ids[0, n - 1] == 49407  # <|startoftext|>, <|endoftext|>
    tok = clip_tokenizer_module().SimpleTokenizer()
    assert tok.decode(ids[0, 1 : n - 1].tolist()).strip() == "a really angry face"
    with pytest.raises(ValueError, match="at most 77"):
        tokenize("word " * 100)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_torchscript_archive_loads_without_running_code(tmp_path):
    model = tiny_clip()
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    text = tokenize(["a face", "a cat"])
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.trace(model, (img, text)).save(str(path))  # the format of OpenAI's ViT-B-32.pt
    tensors = read_torchscript_tensors(path)
    for k, v in model.state_dict().items():
        assert torch.equal(tensors[k], v), k
    loaded = load_clip(path)
    assert all(not p.requires_grad for p in loaded.parameters())
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(img), model.encode_image(img))
        assert torch.equal(loaded.encode_text(text), model.encode_text(text))


def test_fp16_state_dict_loads_as_fp32(tmp_path):
    model = tiny_clip()
    path = tmp_path / "clip_sd.pt"
    torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    loaded = load_clip(path)
    assert loaded.visual.conv1.weight.dtype == torch.float32
    assert torch.equal(loaded.visual.conv1.weight, model.visual.conv1.weight.half().float())


def test_malicious_torchscript_archive_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps({"visual": PickleBomb(marker)}, protocol=2))
        zf.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
        zf.writestr("evil/code/__torch__/m.py", "import os\n")
    with pytest.raises(CheckpointError, match="not allowed"):
        load_clip(path)
    assert not marker.exists()


def test_missing_weights_errors_say_what_and_where():
    with pytest.raises(WeightsNotFoundError) as e:
        load_clip("/nonexistent/ViT-B-32.pt")
    msg = str(e.value)
    assert "CLIP ViT-B/32 weights not found at /nonexistent/ViT-B-32.pt" in msg
    assert "https://openaipublic.azureedge.net/clip/models/" in msg and "--clip-weights" in msg
    with pytest.raises(WeightsNotFoundError) as e:
        load_arcface("/nonexistent/model_ir_se50.pth")
    msg = str(e.value)
    assert "ArcFace weights not found at /nonexistent/model_ir_se50.pth" in msg
    assert "model_ir_se50.pth" in msg and "pixel2style2pixel" in msg and "--arcface-weights" in msg


def test_clip_loss_is_cosine_distance_and_frozen():
    model = tiny_clip()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = CLIPLoss(model, "a really angry face")
    x = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_(True)
    per = loss.per_sample(x)
    with torch.no_grad():
        f = model.encode_image(clip_preprocess(x, 32))
        t = model.encode_text(tokenize("a really angry face"))
        ref = 1 - torch.nn.functional.cosine_similarity(f, t, dim=-1)
    torch.testing.assert_close(per, ref, atol=1e-5, rtol=0)
    loss(x).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    loss.train()
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())


def test_ir_se50_has_psp_names_and_loads_strictly(tmp_path):
    torch.manual_seed(0)
    ref = Backbone(input_size=112, num_layers=50, mode="ir_se", drop_ratio=0.6)
    sd = ref.state_dict()
    assert len(ref.body) == 24
    for key in (
        "input_layer.0.weight",
        "input_layer.2.weight",
        "body.0.res_layer.5.fc1.weight",
        "body.0.res_layer.5.fc2.weight",
        "body.3.shortcut_layer.0.weight",
        "body.3.shortcut_layer.1.running_var",
        "body.23.res_layer.4.num_batches_tracked",
        "output_layer.3.weight",
        "output_layer.4.running_mean",
    ):
        assert key in sd, key
    assert "body.0.shortcut_layer.0.weight" not in sd  # 64 -> 64: max-pool shortcut, no weights
    path = tmp_path / "model_ir_se50.pth"
    torch.save(sd, path)
    net = load_arcface(path)
    assert all(not p.requires_grad for p in net.parameters()) and not net.training
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        emb = net(x)
        torch.testing.assert_close(emb, ref.eval()(x), atol=0, rtol=0)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    bad = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(CheckpointError, match="not the IR-SE50 ArcFace network"):
        load_arcface(bad)


def _styleclip_id_features(facenet: Backbone, x: torch.Tensor) -> torch.Tensor:
    """StyleCLIP's criteria/id_loss.py IDLoss.extract_feats, written from its formula."""
    if x.shape[2] != 256:
        x = torch.nn.AdaptiveAvgPool2d((256, 256))(x)
    x = x[:, :, 35:223, 32:220]
    x = torch.nn.AdaptiveAvgPool2d((112, 112))(x)
    return facenet(x)


@pytest.mark.parametrize("size", [256, 512, 1024])
def test_id_loss_prepares_faces_as_styleclip(size: int, single_thread) -> None:
    """At 256, 512 and 1024 px the embeddings and the loss are StyleCLIP's (loss = mean(1 - cos))."""
    net = tiny_arcface()
    loss = IDLoss(net)
    gen = torch.Generator().manual_seed(size)
    x, y = (torch.rand(2, 3, size, size, generator=gen) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        ex, ey = _styleclip_id_features(net, x), _styleclip_id_features(net, y)
        assert torch.allclose(loss.embed(x), ex, atol=1e-6, rtol=0)
        reference = (1 - (ex * ey).sum(dim=1)).mean()
        assert torch.allclose(loss(x, y), reference, atol=1e-6, rtol=0)


def test_id_loss_crop_and_frozen_weights():
    assert face_crop_box(256) == (35, 223, 32, 220)
    assert face_crop_box(1024) == (140, 892, 128, 880)
    net = tiny_arcface()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss = IDLoss(net).train()
    assert not net.training
    y = torch.rand(2, 3, 256, 256) * 2 - 1
    x = y.clone().requires_grad_(True)
    same = loss(x, y)
    assert abs(float(same.detach())) < 1e-5
    other = loss(torch.rand(2, 3, 256, 256) * 2 - 1, y)
    assert float(other) > 1e-3
    opt = torch.optim.SGD([x], lr=0.1)
    (loss(x, y) + (x**2).mean()).backward()
    opt.step()
    assert x.grad is not None
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
