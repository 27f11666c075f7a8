"""IR-SE identity network (ArcFace) with the parameter names of pSp's ``model_irse.py``.

``Backbone(input_size=112, num_layers=50, mode='ir_se')`` is the architecture of
``model_ir_se50.pth`` (InsightFace_Pytorch, as used by pSp, e4e and StyleCLIP); that file loads with
``strict=True``. The residual units (``bottleneck_IR``/``bottleneck_IR_SE`` in the original code,
:class:`IRUnit` here) are shared with :mod:`cptr.models.encoder`, whose backbone has the same names.

:class:`IDLoss` compares identity embeddings of aligned faces the way StyleCLIP's
``criteria/id_loss.py`` prepares them: larger images are first area-pooled to 256 px, then the inner
face (rows 35:223, columns 32:220, pSp's crop) is cut out and pooled to 112 px. Images smaller than
256 px (CPTR's small demo models) are not enlarged: the crop is scaled to their size instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cptr.models.checkpoints import CheckpointError, load_torch_file
from cptr.models.clip_shim import WeightsNotFoundError

ARCFACE_WEIGHTS_HELP = (
    "ArcFace IR-SE50 weights (model_ir_se50.pth, the InsightFace_Pytorch identity network used by "
    "pSp/e4e/StyleCLIP): download it from the pSp README's 'Pretrained Models' table "
    "(https://github.com/eladrich/pixel2style2pixel#pretrained-models, 'IR-SE50 Model') "
    "and pass --arcface-weights PATH"
)

# Units per stage of the official depths (each stage halves the resolution in its first unit).
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)


class SEModule(nn.Module):
    """Squeeze-and-excitation gate (1x1 convs ``fc1``/``fc2``, no bias)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class IRUnit(nn.Module):
    """Improved-residual unit (``bottleneck_IR``; with ``se=True`` ``bottleneck_IR_SE``)."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = True):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth))
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def make_ir_body(units: Sequence[int], widths: Sequence[int], in_channel: int, se: bool) -> tuple[nn.Sequential, list[int]]:
    """The residual stages as one flat ``Sequential`` (pSp's ``body``) and the index ending each stage."""
    if len(units) != len(widths) or any(u < 1 for u in units):
        raise ValueError(f"units {tuple(units)} and widths {tuple(widths)} must have one positive entry per stage")
    modules: list[nn.Module] = []
    ends = []
    for n, depth in zip(units, widths):
        modules.append(IRUnit(in_channel, depth, 2, se))
        modules.extend(IRUnit(depth, depth, 1, se) for _ in range(n - 1))
        in_channel = depth
        ends.append(len(modules) - 1)
    return nn.Sequential(*modules), ends


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class Backbone(nn.Module):
    """ArcFace IR / IR-SE backbone: 112 px (or 224 px) face -> L2-normalised 512-d embedding.

    ``units``/``widths`` override the depth for tiny test networks; the defaults follow ``num_layers``.
    """

    def __init__(
        self,
        input_size: int = 112,
        num_layers: int = 50,
        mode: str = "ir_se",
        drop_ratio: float = 0.4,
        affine: bool = True,
        units: Sequence[int] | None = None,
        widths: Sequence[int] = STAGE_WIDTHS,
        embedding_dim: int = 512,
    ):
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {input_size}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        if units is None:
            if num_layers not in STAGE_UNITS:
                raise ValueError(f"num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}")
            units = STAGE_UNITS[num_layers]
        self.input_size = input_size
        widths = tuple(int(w) for w in widths)
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], (3, 3), 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        self.body, _ = make_ir_body(units, widths, widths[0], se=mode == "ir_se")
        spatial = input_size // 2 ** len(units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.Dropout(drop_ratio),
            Flatten(),
            nn.Linear(widths[-1] * spatial * spatial, embedding_dim),
            nn.BatchNorm1d(embedding_dim, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(f"expected faces [B, 3, {self.input_size}, {self.input_size}], got {tuple(x.shape)}")
        x = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(x, dim=1)


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` for every parameter (a fixed loss network)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def load_arcface(path: str | os.PathLike, device: str | torch.device = "cpu") -> Backbone:
    """Load ``model_ir_se50.pth`` into an IR-SE50 :class:`Backbone` (strict, weights only), frozen."""

    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"ArcFace weights not found at {p}: {ARCFACE_WEIGHTS_HELP}")
    sd = load_torch_file(p)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(p, f"expected a state dict of the IR-SE50 network, found {type(sd).__name__}")
    sd = {k.removeprefix("module.").removeprefix("facenet."): v for k, v in sd.items()}
    net = Backbone(input_size=112, num_layers=50, mode="ir_se", drop_ratio=0.6, affine=True)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(p, f"not the IR-SE50 ArcFace network ({str(e).splitlines()[0]}); {ARCFACE_WEIGHTS_HELP}") from None
    return freeze(net.to(device))


ID_POOL_SIZE = 256  # StyleCLIP pools larger faces to this size before cropping


def face_crop_box(size: int) -> tuple[int, int, int, int]:
    """pSp's inner-face crop ``(top, bottom, left, right)`` = (35, 223, 32, 220) at 256 px, scaled."""
    s = size / 256
    return round(35 * s), round(223 * s), round(32 * s), round(220 * s)


def identity_faces(x: torch.Tensor, size: int = 112) -> torch.Tensor:
    """Aligned faces [B, 3, H, H] -> the identity network's input [B, 3, size, size], as StyleCLIP prepares them.

    Above 256 px: area-pool to 256, crop rows 35:223 and columns 32:220, area-pool to ``size``
    (StyleCLIP's ``IDLoss.extract_feats``). At 256 px that is the crop and the pool alone; below it
    the crop box is scaled (:func:`face_crop_box`) instead of enlarging the image.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {tuple(x.shape)}")
    if x.shape[2] > ID_POOL_SIZE or x.shape[3] > ID_POOL_SIZE:
        x = F.adaptive_avg_pool2d(x, (ID_POOL_SIZE, ID_POOL_SIZE))
    top, bottom, left, right = face_crop_box(x.shape[2])
    return F.adaptive_avg_pool2d(x[:, :, top:bottom, left:right], (size, size))


class IDLoss(nn.Module):
    """``1 - cos(ArcFace(x), ArcFace(y))`` averaged over the batch, for aligned faces in [-1, 1].

    The network is frozen; gradients flow to the images only.
    """

    def __init__(self, facenet: Backbone):
        super().__init__()
        self.facenet = freeze(facenet)

    def train(self, mode: bool = True) -> IDLoss:  # the identity network stays in eval mode
        super().train(mode)
        self.facenet.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Identity embeddings [B, D] of faces [B, 3, H, W] (prepared by :func:`identity_faces`)."""
        return self.facenet(identity_faces(x, self.facenet.input_size))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ex = self.embed(x)
        with torch.no_grad():
            ey = self.embed(y)
        return (1 - (ex * ey).sum(dim=1)).mean()
