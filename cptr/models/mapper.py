"""StyleCLIP latent mapper ("levels mapper") and its official checkpoint format.

Three small MLPs predict a W+ offset: ``course_mapping`` (sic, the official spelling) for entries
0-3, ``medium_mapping`` for 4-7 and ``fine_mapping`` for 8..n_latent-1. Each is
``Sequential(PixelNorm, 4 x EqualLinear(lr_mul=0.01, fused leaky ReLU))``. The edit is
``w + step * M(w)`` (StyleCLIP uses ``step = 0.1``). A level that is switched off contributes zero.

Numerics follow the official code exactly, including one quirk: ``PixelNorm`` normalises over
dim 1, which for a ``[B, entries, 512]`` slice is the *entries* axis, not the feature axis. The
linear layers act on the last axis.

Official checkpoints (StyleCLIP ``mapper/training/coach.py``) are
``{'state_dict': {'mapper.course_mapping.mapping.1.weight', ..., 'decoder.*'}, 'opts': {...}}``;
``opts`` is a dict (or an ``argparse.Namespace``) with ``no_coarse_mapper``/``no_medium_mapper``/
``no_fine_mapper``, ``stylegan_size``, ``description``. The ``decoder.*`` generator weights are
optional here: they are ignored on load and written only when asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cptr import contracts
from cptr.io import atomic_path
from cptr.models.checkpoints import CheckpointError, load_torch_file, options_dict
from cptr.models.stylegan2 import EqualLinear, PixelNorm

LEVELS = ("coarse", "medium", "fine")
LEVEL_MODULES = {"coarse": "course_mapping", "medium": "medium_mapping", "fine": "fine_mapping"}
COARSE_END, MEDIUM_END = 4, 8
DEFAULT_STEP = 0.1


class LevelMLP(nn.Module):
    """One level: ``mapping = Sequential(PixelNorm, EqualLinear x n_layers)`` (official ``Mapper``)."""

    def __init__(self, style_dim: int = 512, n_layers: int = 4, lr_mul: float = 0.01):
        super().__init__()
        self.style_dim = style_dim
        layers: list[nn.Module] = [PixelNorm()]
        layers += [EqualLinear(style_dim, style_dim, lr_mul=lr_mul, activation="fused_lrelu") for _ in range(n_layers)]
        self.mapping = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, entries, style_dim] -> offsets of the same shape."""
        b, n, d = x.shape
        x = self.mapping[0](x)  # PixelNorm over the entries axis (official behaviour)
        x = x.reshape(b * n, d)
        for layer in self.mapping[1:]:
            x = layer(x)
        return x.reshape(b, n, d)


class LevelsMapper(nn.Module):
    """StyleCLIP levels mapper: W+ ``[B, n_latent, style_dim]`` -> offsets (same shape).

    ``n_latent`` is the generator's W+ length (18 at 1024 px, 14 at 256 px); the weights do not
    depend on it, so it only fixes the shape check and the exported contract.
    """

    def __init__(
        self,
        n_latent: int = 18,
        style_dim: int = 512,
        coarse: bool = True,
        medium: bool = True,
        fine: bool = True,
        n_layers: int = 4,
        lr_mul: float = 0.01,
        step: float = DEFAULT_STEP,
        description: str = "",
    ):
        super().__init__()
        if n_latent <= MEDIUM_END:
            raise ValueError(f"the levels mapper needs n_latent > {MEDIUM_END} (a generator of 32 px or more), got {n_latent}")
        if not (coarse or medium or fine):
            raise ValueError("at least one of the coarse, medium and fine levels must be on")
        self.n_latent, self.style_dim, self.n_layers, self.lr_mul = n_latent, style_dim, n_layers, lr_mul
        self.step = float(step)
        self.description = description
        self.levels = {"coarse": coarse, "medium": medium, "fine": fine}
        if coarse:
            self.course_mapping = LevelMLP(style_dim, n_layers, lr_mul)
        if medium:
            self.medium_mapping = LevelMLP(style_dim, n_layers, lr_mul)
        if fine:
            self.fine_mapping = LevelMLP(style_dim, n_layers, lr_mul)

    def level_slices(self) -> dict[str, slice]:
        return {"coarse": slice(0, COARSE_END), "medium": slice(COARSE_END, MEDIUM_END), "fine": slice(MEDIUM_END, self.n_latent)}

    def _check(self, w: torch.Tensor) -> None:
        if w.ndim != 3 or w.shape[1] != self.n_latent or w.shape[2] != self.style_dim:
            raise ValueError(f"W+ must have shape [B, {self.n_latent}, {self.style_dim}], got {tuple(w.shape)}")

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """The offsets ``M(w)``; switched-off levels are zero."""
        self._check(w)
        parts = []
        for level, sl in self.level_slices().items():
            x = w[:, sl]
            parts.append(getattr(self, LEVEL_MODULES[level])(x) if self.levels[level] else torch.zeros_like(x))
        return torch.cat(parts, dim=1)

    def edit(self, w: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """``w + step * M(w)`` (``step`` defaults to the mapper's own, StyleCLIP's 0.1)."""
        return w + (self.step if step is None else step) * self(w)

    def opts(self) -> dict[str, Any]:
        """The official ``opts`` entries that describe this mapper (plus ``cptr_*`` extras)."""
        return {
            "mapper_type": "LevelsMapper",
            "no_coarse_mapper": not self.levels["coarse"],
            "no_medium_mapper": not self.levels["medium"],
            "no_fine_mapper": not self.levels["fine"],
            "stylegan_size": 2 ** ((self.n_latent + 2) // 2),
            "description": self.description,
            "cptr_n_latent": self.n_latent,
            "cptr_style_dim": self.style_dim,
            "cptr_step": self.step,
        }


class MappedEdit(nn.Module):
    """``w_plus -> w_plus + step * M(w_plus)``: the exported mapper stage."""

    def __init__(self, mapper: LevelsMapper, step: float | None = None):
        super().__init__()
        self.mapper = mapper
        self.step = mapper.step if step is None else float(step)

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        return self.mapper.edit(w_plus, self.step)


# --------------------------------------------------------------------------- checkpoints


def mapper_from_state_dict(
    sd: dict[str, torch.Tensor], opts: Any = None, n_latent: int | None = None, path: str | os.PathLike = "<state dict>"
) -> LevelsMapper:
    """Build a :class:`LevelsMapper` from official keys (``mapper.`` prefix optional) and load it strictly."""

    o = options_dict(opts)
    mtype = o.get("mapper_type", "LevelsMapper")
    if mtype != "LevelsMapper":
        raise CheckpointError(path, f"mapper_type {mtype!r} is not supported; only StyleCLIP's LevelsMapper is")
    if any(k.startswith("mapper.") for k in sd):
        sd = {k[len("mapper.") :]: v for k, v in sd.items() if k.startswith("mapper.")}
    present = {lvl: any(k.startswith(LEVEL_MODULES[lvl] + ".") for k in sd) for lvl in LEVELS}
    if not any(present.values()):
        raise CheckpointError(
            path, f"no StyleCLIP mapper weights (expected keys like 'mapper.course_mapping.mapping.1.weight'); keys start {sorted(sd)[:5]}"
        )
    for lvl in LEVELS:  # opts and weights must agree on which levels exist
        flag = o.get(f"no_{lvl}_mapper")
        if flag is not None and bool(flag) == present[lvl]:
            raise CheckpointError(
                path, f"opts say no_{lvl}_mapper={flag} but the {lvl} weights are {'present' if present[lvl] else 'missing'}"
            )
    first = next(lvl for lvl in LEVELS if present[lvl])
    prefix = LEVEL_MODULES[first] + ".mapping."
    layer_ids = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", k))})
    if not layer_ids:
        raise CheckpointError(path, f"no {prefix}N.weight tensors in the mapper")
    style_dim = int(sd[f"{prefix}{layer_ids[0]}.weight"].shape[1])
    if n_latent is None:
        n_latent = o.get("cptr_n_latent")
    if n_latent is None:
        size = int(o.get("stylegan_size", 1024))
        n_latent = contracts.n_latent(size)
    lr_mul = 0.01
    mapper = LevelsMapper(
        n_latent=int(n_latent),
        style_dim=style_dim,
        coarse=present["coarse"],
        medium=present["medium"],
        fine=present["fine"],
        n_layers=len(layer_ids),
        lr_mul=lr_mul,
        step=float(o.get("cptr_step", DEFAULT_STEP)),
        description=str(o.get("description", "")),
    )
    try:
        mapper.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(path, f"the mapper weights do not match a StyleCLIP LevelsMapper: {str(e).splitlines()[0]}") from None
    return mapper


def load_mapper(path: str | os.PathLike, n_latent: int | None = None, device: str | torch.device = "cpu") -> LevelsMapper:
    """Load an official StyleCLIP mapper checkpoint (or one written by :func:`save_mapper`); eval mode.

    ``n_latent`` overrides the W+ length read from ``opts['stylegan_size']`` (default 1024 px -> 18),
    e.g. 14 to use the mapper with a 256 px generator.
    """

    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(path, f"expected a dict checkpoint, found {type(ckpt).__name__}")
    sd = ckpt.get("state_dict", ckpt)
    if not isinstance(sd, dict):
        raise CheckpointError(path, "'state_dict' is not a dict of tensors")
    try:
        opts = options_dict(ckpt.get("opts"))
    except TypeError as e:
        raise CheckpointError(path, str(e)) from None
    mapper = mapper_from_state_dict(sd, opts, n_latent=n_latent, path=path)
    return mapper.to(device).eval()


def _plain(v: Any) -> Any:
    """Options as plain data (what ``torch.load(weights_only=True)`` reads back)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


def save_mapper(
    mapper: LevelsMapper,
    path: str | os.PathLike,
    opts: dict[str, Any] | None = None,
    decoder: nn.Module | None = None,
) -> Path:
    """Write the official format ``{'state_dict': {'mapper.*'[, 'decoder.*']}, 'opts': {...}}`` atomically.

    ``decoder`` (the generator) makes the file loadable by StyleCLIP's own ``StyleCLIPMapper``,
    which loads ``decoder.*`` strictly; it is not needed by CPTR.
    """

    state = {f"mapper.{k}": v.detach().cpu().clone() for k, v in mapper.state_dict().items()}
    if decoder is not None:
        state.update({f"decoder.{k}": v.detach().cpu().clone() for k, v in decoder.state_dict().items()})
    all_opts = {k: _plain(v) for k, v in {**(opts or {}), **mapper.opts()}.items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "opts": all_opts}, tmp)
    return Path(path)
