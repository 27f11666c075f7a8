"""FID Inception-v3 (cptr.data.inception): architecture of pytorch-fid's port, safe strict loading.

The real weights (pt_inception-2015-12-05-6726825d.pth) are not available to tests, so the network
runs on random weights whose batch-norm statistics are calibrated on random images (non-trivial
features). The expected numbers below were read off pytorch-fid's ``fid_inception_v3()`` model
(torchvision ``Inception3(num_classes=1008, aux_logits=False)`` with the FID blocks patched in).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cptr.data.inception import FEATURE_DIM, FIDInception, InceptionE, _same_size_avg_pool, load_fid_inception
from tests.conftest import PickleBomb

# pytorch-fid's FID Inception: parameters (with the 1008-way fc), state-dict entries (94 conv+BN
# units x 6 entries + fc weight/bias) and top-level modules with parameters.
REFERENCE_PARAMETERS = 23_850_960
REFERENCE_STATE_DICT_ENTRIES = 566
REFERENCE_BLOCKS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "fc",
)  # fmt: skip
REFERENCE_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.bn.weight": (192,),
    "Mixed_7c.branch_pool.bn.num_batches_tracked": (),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


@pytest.fixture(scope="module")
def random_net() -> FIDInception:
    """Random weights; batch-norm statistics measured on random images so features are not degenerate."""
    torch.manual_seed(0)
    net = FIDInception()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    with torch.no_grad():
        net.train()(torch.rand(2, 3, 64, 64) * 2 - 1)
    return net.eval()


@pytest.fixture(scope="module")
def weights_file(random_net: FIDInception, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fid") / "pt_inception-random.pth"
    torch.save(random_net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def loaded(weights_file: Path) -> FIDInception:
    return load_fid_inception(weights_file)


def test_architecture_matches_pytorch_fid() -> None:
    net = FIDInception()
    sd = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == REFERENCE_PARAMETERS
    assert len(sd) == REFERENCE_STATE_DICT_ENTRIES
    assert tuple(name for name, m in net.named_children() if any(True for _ in m.parameters())) == REFERENCE_BLOCKS
    for key, shape in REFERENCE_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key
    assert all(m.eps == 0.001 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_fid_pooling_patches() -> None:
    # TensorFlow's average pool ignores the padding: a constant map stays constant up to the border.
    ones = torch.ones(1, 2, 5, 5)
    assert torch.equal(_same_size_avg_pool(ones), ones)
    assert not torch.equal(F.avg_pool2d(ones, 3, 1, 1), ones)  # what torchvision's blocks would give
    # Mixed_7b averages, Mixed_7c takes a max in its pool branch.
    net = FIDInception()
    assert (net.Mixed_7b.pool, net.Mixed_7c.pool) == ("avg", "max")
    with pytest.raises(ValueError, match="pool"):
        InceptionE(8, pool="mean")  # type: ignore[arg-type]


def test_round_trip_gives_identical_features(random_net: FIDInception, loaded: FIDInception) -> None:
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    for key, value in random_net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.manual_seed(1)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = random_net(images)
        got = loaded(images)
    assert torch.equal(got, expected)
    assert got.std(dim=1).min() > 0 and (got[0] - got[1]).abs().max() > 0  # not degenerate


@pytest.mark.parametrize("size", [64, 256])
def test_features_shape_and_finite(loaded: FIDInception, size: int) -> None:
    torch.manual_seed(size)
    with torch.no_grad():
        feats = loaded(torch.rand(2, 3, size, size) * 2 - 1)
    assert feats.shape == (2, FEATURE_DIM)
    assert feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    assert (feats >= 0).all()  # mean of ReLU outputs


def test_forward_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        FIDInception()(torch.zeros(1, 1, 64, 64))


def test_file_without_batch_counters_loads(random_net: FIDInception, tmp_path: Path) -> None:
    # Files saved by older PyTorch have no BatchNorm num_batches_tracked entries.
    sd = {k: v for k, v in random_net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(sd, path)
    net = load_fid_inception(path)
    assert torch.equal(net.fc.weight, random_net.fc.weight)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        load_fid_inception(path)


def test_missing_key_names_file_and_key(random_net: FIDInception, tmp_path: Path) -> None:
    sd = dict(random_net.state_dict())
    del sd["Mixed_6c.branch7x7_2.conv.weight"]
    path = tmp_path / "missing.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="missing keys: Mixed_6c.branch7x7_2.conv.weight") as info:
        load_fid_inception(path)
    assert str(path) in str(info.value)


def test_wrong_shape_names_file_key_and_shapes(random_net: FIDInception, tmp_path: Path) -> None:
    sd = dict(random_net.state_dict())
    sd["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet classifier, not the FID graph's
    path = tmp_path / "shape.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"wrong shapes: fc.weight \(1000, 2048\) \(expected \(1008, 2048\)\)") as info:
        load_fid_inception(path)
    assert str(path) in str(info.value)


def test_unexpected_keys_and_non_state_dicts(random_net: FIDInception, tmp_path: Path) -> None:
    sd = dict(random_net.state_dict())
    sd["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    path = tmp_path / "extra.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="unexpected keys: AuxLogits.fc.weight"):
        load_fid_inception(path)
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ValueError, match="expected a state dict"):
        load_fid_inception(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=str(path)):
        load_fid_inception(path)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_arbitrary_objects_are_refused_not_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"Conv2d_1a_3x3.conv.weight": PickleBomb(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match="refused to unpickle") as info:
        load_fid_inception(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
