"""Image -> W+ encoder: pSp's GradualStyleEncoder (feature pyramid + map2style heads), sizes configurable.

The architecture and parameter names are those of pSp / e4e ``GradualStyleEncoder`` /
``Encoder4Editing``: an IR-SE ``input_layer`` + ``body`` backbone (units shared with
:mod:`cptr.models.arcface`), lateral 1x1 convs ``latlayer1``/``latlayer2`` building a three-level
pyramid, and one ``styles[i]`` head (strided 3x3 convs down to 1x1, then an ``EqualLinear``) per W+
entry: entries 0-2 read the coarsest map, 3-6 the middle one, 7.. the finest. The prediction is an
offset from the generator's average latent (buffer ``latent_avg`` [n_latent, style_dim]).

``head='psp'`` predicts every entry independently; ``head='e4e'`` predicts one w from head 0 and adds
per-entry deltas from heads 1.. (e4e's inference mode).

With the defaults (IR-SE50 stage depths (3, 4, 14, 3), widths (64, 128, 256, 512), style_dim 512,
256 px input) this *is* pSp's / e4e's encoder and their released checkpoints load strictly (see
:func:`load_encoder`). ``units``, ``widths`` and ``head_width`` shrink it for tests and the demo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cptr.io import atomic_path
from cptr.models.arcface import STAGE_UNITS, STAGE_WIDTHS, make_ir_body
from cptr.models.checkpoints import CheckpointError, load_torch_file, options_dict
from cptr.models.stylegan2 import EqualLinear

COARSE_IND, MIDDLE_IND = 3, 7
ENCODER_TYPES = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e"}


class StyleHead(nn.Module):
    """pSp ``GradualStyleBlock``: 3x3 stride-2 convs + leaky ReLU down to 1x1, then ``EqualLinear``."""

    def __init__(self, in_channel: int, width: int, out_dim: int, spatial: int):
        super().__init__()
        n_down = int(math.log2(spatial)) if spatial >= 2 else 0
        if n_down < 1 or 2**n_down != spatial:
            raise ValueError(f"a style head needs a power-of-two input of at least 2x2, got {spatial}")
        self.width = width
        layers: list[nn.Module] = []
        for i in range(n_down):
            layers += [nn.Conv2d(in_channel if i == 0 else width, width, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(width, out_dim, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(x.shape[0], self.width))


class Encoder(nn.Module):
    """Aligned face ``[B, 3, S, S]`` in [-1, 1] -> W+ ``[B, n_latent, style_dim]``."""

    def __init__(
        self,
        n_latent: int,
        style_dim: int = 512,
        input_size: int = 256,
        units: Sequence[int] = STAGE_UNITS[50],
        widths: Sequence[int] = STAGE_WIDTHS,
        mode: str = "ir_se",
        head_width: int | None = None,
        head: str = "psp",
        latent_avg: torch.Tensor | None = None,
        pool: int = 1,
    ):
        """``pool`` > 1: the input (still ``input_size``, e.g. the 256 px aligned crop) is area-pooled by
        that factor and the backbone works at ``input_size // pool`` (encoders for small generators)."""
        super().__init__()
        if head not in ("psp", "e4e"):
            raise ValueError(f"head must be 'psp' or 'e4e', got {head!r}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        units, widths = tuple(int(u) for u in units), tuple(int(w) for w in widths)
        if len(units) != 4 or len(widths) != 4:
            raise ValueError(f"the backbone has 4 stages: got units {units}, widths {widths}")
        if input_size < 32 or 2 ** int(math.log2(input_size)) != input_size:
            raise ValueError(f"input_size must be a power of two >= 32, got {input_size}")
        if pool < 1 or input_size % pool or input_size // pool < 32:
            raise ValueError(f"pool must divide input_size {input_size} and leave at least 32 px, got {pool}")
        self.n_latent, self.style_dim, self.input_size, self.pool = int(n_latent), int(style_dim), int(input_size), int(pool)
        work = self.input_size // self.pool
        self.units, self.widths, self.mode, self.head = units, widths, mode, head
        self.head_width = int(head_width or style_dim)
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], (3, 3), 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        self.body, self._stage_ends = make_ir_body(units, widths, widths[0], se=mode == "ir_se")
        top = widths[3]
        self.styles = nn.ModuleList()
        for i in range(self.n_latent):
            spatial = work // (16 if i < COARSE_IND else 8 if i < MIDDLE_IND else 4)
            self.styles.append(StyleHead(top, self.head_width, self.style_dim, spatial))
        self.latlayer1 = nn.Conv2d(widths[2], top, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], top, kernel_size=1, stride=1, padding=0)
        self.register_buffer("latent_avg", torch.zeros(self.n_latent, self.style_dim))
        if latent_avg is not None:
            self.set_latent_avg(latent_avg)

    def set_latent_avg(self, latent_avg: torch.Tensor) -> None:
        """Set the starting latent from ``[style_dim]``, ``[1, style_dim]`` or ``[n_latent, style_dim]``."""
        la = torch.as_tensor(latent_avg, dtype=torch.float32).detach()
        if la.ndim == 1 or (la.ndim == 2 and la.shape[0] == 1):
            la = la.reshape(1, -1).expand(self.n_latent, -1)
        if tuple(la.shape) != (self.n_latent, self.style_dim):
            raise ValueError(
                f"latent_avg must have {self.style_dim} features (or shape [{self.n_latent}, {self.style_dim}]), got {tuple(latent_avg.shape)}"
            )
        with torch.no_grad():
            self.latent_avg.copy_(la)

    def config(self) -> dict[str, Any]:
        return {
            "n_latent": self.n_latent,
            "style_dim": self.style_dim,
            "input_size": self.input_size,
            "units": list(self.units),
            "widths": list(self.widths),
            "mode": self.mode,
            "head_width": self.head_width,
            "head": self.head,
            "pool": self.pool,
        }

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Backbone maps at 1/4, 1/8 and 1/16 of the input (pSp's c1, c2, c3)."""
        x = self.input_layer(x)
        taps = {}
        ends = {self._stage_ends[1]: "c1", self._stage_ends[2]: "c2", self._stage_ends[3]: "c3"}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in ends:
                taps[ends[i]] = x
        return taps["c1"], taps["c2"], taps["c3"]

    @staticmethod
    def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted W+ offsets from ``latent_avg`` (``x``: [B, 3, input_size, input_size];
        an encoder with ``pool > 1`` area-pools it by that factor first)."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(f"expected aligned faces [B, 3, {self.input_size}, {self.input_size}] in [-1, 1], got {tuple(x.shape)}")
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        c1, c2, c3 = self.features(x)
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        maps = [c3 if i < COARSE_IND else p2 if i < MIDDLE_IND else p1 for i in range(self.n_latent)]
        if self.head == "psp":
            return torch.stack([head(m) for head, m in zip(self.styles, maps)], dim=1)
        w0 = self.styles[0](c3)
        return torch.stack([w0] + [w0 + head(m) for head, m in zip(self.styles[1:], maps[1:])], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.offsets(x) + self.latent_avg.unsqueeze(0)


def small_encoder_config(n_latent: int, style_dim: int = 512, input_size: int = 256, width: int = 32) -> dict[str, Any]:
    """A light encoder (one unit per stage, narrow heads) for the demo style and tests."""
    return {
        "n_latent": n_latent,
        "style_dim": style_dim,
        "input_size": input_size,
        "units": [1, 1, 1, 1],
        "widths": [width // 2, width, width, 2 * width],
        "mode": "ir_se",
        "head_width": 2 * width,
        "head": "psp",
    }


# --------------------------------------------------------------------------- checkpoints


def infer_encoder_config(sd: dict[str, torch.Tensor], opts: dict[str, Any]) -> dict[str, Any]:
    """Encoder constructor arguments from pSp-named weights (plus ``opts``)."""
    n_units = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    depths = [int(sd[f"body.{i}.res_layer.1.weight"].shape[0]) for i in range(n_units)]
    if "cptr_units" in opts:  # exact stage split (written by save_encoder)
        units, widths = [int(u) for u in opts["cptr_units"]], [int(w) for w in opts["cptr_widths"]]
    else:  # pSp/e4e: every stage has its own width, so stages are the runs of equal depth
        units, widths = [], []
        for d in depths:
            if widths and widths[-1] == d:
                units[-1] += 1
            else:
                units.append(1)
                widths.append(d)
    n_latent = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("styles."))
    lin = sd["styles.0.linear.weight"]
    return {
        "n_latent": n_latent,
        "style_dim": int(lin.shape[0]),
        "input_size": int(opts.get("cptr_input_size", 256)),
        "pool": int(opts.get("cptr_pool", 1)),
        "units": units,
        "widths": widths,
        "mode": "ir_se" if any(k.endswith("res_layer.5.fc1.weight") for k in sd) else "ir",
        "head_width": int(lin.shape[1]),
        "head": ENCODER_TYPES.get(str(opts.get("encoder_type", "GradualStyleEncoder")), "psp"),
    }


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> Encoder:
    """Load an encoder checkpoint in the pSp/e4e format; returns it in eval mode.

    Accepted: files written by :func:`save_encoder`, pSp checkpoints with
    ``encoder_type='GradualStyleEncoder'`` (e.g. ``psp_ffhq_encode.pt``) and e4e checkpoints
    (``Encoder4Editing``, e.g. ``e4e_ffhq_encode.pt``), 3-channel input only. Other pSp encoder
    types (``BackboneEncoderUsingLastLayerIntoW[Plus]``) are refused with a clear error.
    The ``decoder.*`` weights in those files are ignored; ``latent_avg`` becomes the starting latent.
    """

    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(path, "expected a pSp-format encoder checkpoint {'state_dict': {'encoder.*': ...}, 'opts': {...}}")
    try:
        opts = options_dict(ckpt.get("opts"))
    except TypeError as e:
        raise CheckpointError(path, str(e)) from None
    etype = str(opts.get("encoder_type", "GradualStyleEncoder"))
    if etype not in ENCODER_TYPES:
        raise CheckpointError(path, f"encoder_type {etype!r} is not supported; supported: {', '.join(ENCODER_TYPES)}")
    if int(opts.get("input_nc", 3)) != 3:
        raise CheckpointError(path, f"this encoder takes {opts.get('input_nc')} input channels; only RGB (3) encoders are supported")
    sd = {k[len("encoder.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    if not sd:
        raise CheckpointError(path, "no 'encoder.*' weights in state_dict")
    try:
        enc = Encoder(**infer_encoder_config(sd, opts))
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(path, f"cannot read the encoder architecture: {e}") from None
    la = ckpt.get("latent_avg")
    start_from_avg = opts.get("start_from_latent_avg", la is not None)
    sd["latent_avg"] = enc.latent_avg.clone()
    try:
        enc.load_state_dict(sd, strict=True)
        if la is not None and start_from_avg:
            enc.set_latent_avg(la.reshape(-1, la.shape[-1])[: enc.n_latent] if la.ndim == 2 and la.shape[0] > enc.n_latent else la)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(path, f"the encoder weights do not match: {str(e).splitlines()[0]}") from None
    return enc.to(device).eval()


def save_encoder(encoder: Encoder, path: str | os.PathLike, opts: dict[str, Any] | None = None, decoder: nn.Module | None = None) -> Path:
    """Write ``{'state_dict': {'encoder.*'[, 'decoder.*']}, 'opts': {...}, 'latent_avg': ...}`` atomically.

    That is pSp's layout; with the default architecture (and ``decoder``) pSp's own code loads it.
    """

    sd = {f"encoder.{k}": v.detach().cpu().clone() for k, v in encoder.state_dict().items() if k != "latent_avg"}
    if decoder is not None:
        sd.update({f"decoder.{k}": v.detach().cpu().clone() for k, v in decoder.state_dict().items()})
    cfg = encoder.config()
    size = 2 ** ((encoder.n_latent + 2) // 2)
    all_opts = {
        **{k: v for k, v in (opts or {}).items() if v is None or isinstance(v, (bool, int, float, str))},
        "encoder_type": {v: k for k, v in ENCODER_TYPES.items()}[encoder.head],
        "input_nc": 3,
        "output_size": size,
        "stylegan_size": size,
        "start_from_latent_avg": True,
        "cptr_units": cfg["units"],
        "cptr_widths": cfg["widths"],
        "cptr_input_size": cfg["input_size"],
        "cptr_pool": cfg["pool"],
    }
    with atomic_path(path) as tmp:
        torch.save({"state_dict": sd, "opts": all_opts, "latent_avg": encoder.latent_avg.detach().cpu().clone()}, tmp)
    return Path(path)
