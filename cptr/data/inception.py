"""The FID Inception-v3 feature extractor, in pure PyTorch, with the parameter names of its weights file.

FID (Heusel et al. 2017) compares statistics of the 2048-d ``pool3`` features of TensorFlow's
2015-12-05 Inception-v3 graph. mseitzer/pytorch-fid ported that graph's weights to
``pt_inception-2015-12-05-6726825d.pth`` (:data:`FID_WEIGHTS_URL`), a plain state dict of
torchvision's ``Inception3(num_classes=1008, aux_logits=False)`` in which some blocks are patched to
behave like the TensorFlow graph. :class:`FIDInception` is that network (``InceptionV3`` with
``use_fid_inception=True`` and ``output_blocks=[3]``), written here without torchvision:

* the 3x3 average pools inside the ``Mixed_5*`` (A), ``Mixed_6b..6e`` (C) and ``Mixed_7b`` (E) blocks
  do not count the zero padding (``count_include_pad=False``, TensorFlow's behaviour);
* the pool branch of ``Mixed_7c``, the last E block, is a 3x3 *max* pool, as in the TensorFlow graph;
* images are resized to 299x299 (bilinear, ``align_corners=False``, no antialiasing) and the
  features are the adaptive average pool of ``Mixed_7c``'s output.

Module and parameter names are those of the weights file (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ``fc.weight``, ...), so :func:`load_fid_inception` loads it key
for key with ``strict=True``. The 1008-way ``fc`` classifier is kept only for that; the features do
not use it.

pytorch-fid takes images in [0, 1], resizes them and maps them to [-1, 1] (``2x - 1``).
:class:`FIDInception` takes the [-1, 1] images a generator produces, maps them to [0, 1] with
``(x + 1) / 2`` and then does exactly those steps, so ``FIDInception()(x)`` equals pytorch-fid's
``InceptionV3()((x + 1) / 2)`` bit for bit (given the same weights).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cptr.models.checkpoints import CheckpointError
from cptr.models.clip_shim import WeightsNotFoundError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}"
FID_WEIGHTS_HELP = (
    f"FID Inception weights ({FID_WEIGHTS_FILE}, pytorch-fid's port of TensorFlow's Inception-v3): download {FID_WEIGHTS_URL}"
)

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TensorFlow graph's classifier width (unused by the features)

_MAX_LISTED = 5  # keys named per kind of mismatch in a load error


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: Inception's unit (``conv``, ``bn``)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _same_size_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that, like TensorFlow's, averages over the unpadded pixels only."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (``Mixed_5b/5c/5d``): 1x1, 5x5, double 3x3 and pooled 1x1 branches."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_same_size_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35 -> 17 reduction (``Mixed_6a``): strided 3x3, strided double 3x3 and a max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3d, bp], 1)


class InceptionC(nn.Module):
    """17x17 block (``Mixed_6b..6e``): 1x1, factorised 7x7, double factorised 7x7 and pooled 1x1."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c, 1)
        self.branch7x7_2 = BasicConv2d(c, c, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c, 1)
        self.branch7x7dbl_2 = BasicConv2d(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c, c, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = conv(b7d)
        bp = self.branch_pool(_same_size_avg_pool(x))
        return torch.cat([b1, b7, b7d, bp], 1)


class InceptionD(nn.Module):
    """17 -> 8 reduction (``Mixed_7a``): 1x1 then strided 3x3, factorised 7x7 then strided 3x3, max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """8x8 block (``Mixed_7b``, ``Mixed_7c``): 1x1, split 3x3, split double 3x3 and pooled 1x1 branches.

    ``pool="avg"`` (``Mixed_7b``) averages without the padding; ``pool="max"`` (``Mixed_7c``) takes a
    3x3 max instead, as the TensorFlow graph the weights come from does.
    """

    def __init__(self, in_channels: int, pool: Literal["avg", "max"]):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        pooled = _same_size_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, b3d, bp], 1)


class FIDInception(nn.Module):
    """pytorch-fid's FID Inception-v3: images ``[B, 3, H, W]`` in [-1, 1] -> pool3 features ``[B, 2048]``.

    Build it with :func:`load_fid_inception` to get the real weights; a bare instance has PyTorch's
    default initialisation (useful only for tests) and is in training mode like any new module.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)  # in the weights file; not used by forward

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W] in [-1, 1], got {tuple(images.shape)}")
        x = (images.to(self.Conv2d_1a_3x3.conv.weight.dtype) + 1) / 2  # the [0, 1] pixels pytorch-fid takes
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # pytorch-fid's normalisation, after the resize as there
        for stage in (
            self.Conv2d_1a_3x3,
            self.Conv2d_2a_3x3,
            self.Conv2d_2b_3x3,
            self.maxpool1,
            self.Conv2d_3b_1x1,
            self.Conv2d_4a_3x3,
            self.maxpool2,
        ):
            x = stage(x)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return torch.flatten(self.avgpool(x), 1)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")


def _checked_state_dict(path: Path, sd: object, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's tensors under the module's names, or a :class:`CheckpointError` saying what differs.

    The names are the same on both sides. Only BatchNorm's ``num_batches_tracked`` counters, which
    files saved by older PyTorch lack and which do not affect evaluation, are filled in when absent.
    """
    if not isinstance(sd, Mapping):
        raise CheckpointError(
            path, f"expected a state dict (name -> tensor) of the FID Inception network, found {type(sd).__name__}; {FID_WEIGHTS_HELP}"
        )
    not_tensors = [str(k) for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(path, f"not a state dict: entries that are not named tensors: {_listed(not_tensors)}")
    out = dict(sd)
    for key, value in expected.items():
        if key.endswith(".num_batches_tracked") and key not in out:
            out[key] = value.clone()
    missing = [k for k in expected if k not in out]
    unexpected = [k for k in out if k not in expected]
    wrong_shape = [
        f"{k} {tuple(out[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if k in out and out[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {_listed(wrong_shape)}")
    if problems:
        raise CheckpointError(path, f"not the FID Inception-v3 state dict ({'; '.join(problems)}); {FID_WEIGHTS_HELP}")
    return out


def load_fid_inception(path: str | os.PathLike, device: str | torch.device = "cpu") -> FIDInception:
    """Load ``pt_inception-2015-12-05-6726825d.pth`` into a frozen :class:`FIDInception` in eval mode.

    The file is read with ``torch.load(weights_only=True)``: a file holding anything but tensors and
    plain containers is refused, never executed. Raises :class:`FileNotFoundError` when the file is
    missing and :class:`ValueError` (:class:`~cptr.models.checkpoints.CheckpointError`, naming the file) when
    it cannot be read or does not hold this network's keys and shapes.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"FID Inception weights not found at {p}: {FID_WEIGHTS_HELP}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = str(e).strip().splitlines()
        reason = next((ln.strip() for ln in detail if "GLOBAL" in ln or "Unsupported" in ln), detail[0] if detail else "")
        raise CheckpointError(p, f"refused to unpickle: the file holds objects that are not plain tensors/containers ({reason})") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(p, f"not a readable PyTorch state dict ({type(e).__name__}: {first})") from None
    net = FIDInception()
    net.load_state_dict(_checked_state_dict(p, sd, net.state_dict()), strict=True)
    return net.to(device).eval().requires_grad_(False)
