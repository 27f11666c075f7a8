"""From a style's name (or two checkpoints) to the models it serves: one home for ``cptr-export`` and
the in-process pipeline (:mod:`cptr.pipeline`).

:func:`resolve_style` settles every setting (a :class:`~cptr.styles.StyleInfo`): a registered style's own, each overridden where the
caller gives one. :func:`load_style` loads the generators, blends them, and loads the encoder and
the text mappers, checking that their latent shapes fit the generator. Problems raise
:class:`~cptr.styles.StyleError` with the fix.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cptr.models.checkpoints import CheckpointError, load_generator
from cptr.models.encoder import Encoder, load_encoder
from cptr.models.mapper import load_mapper
from cptr.models.stylegan2 import Generator
from cptr.styles import DEFAULT_ALPHA, DEMO_NAME, StyleError, StyleInfo, get_style, validate_name
from cptr.styles.blend import blend_generators

PathLike = str | os.PathLike


@dataclass
class StyleModels:
    """The loaded models of a :class:`StyleInfo`: the blend is what is served."""

    style: StyleInfo
    source: Generator
    target: Generator
    generator: Generator  # the blend (alpha, swap_res, blend_width)
    encoder: Encoder | None
    mappers: dict[str, nn.Module]


def resolve_style(
    style: str | None = None,
    *,
    source: PathLike | None = None,
    target: PathLike | None = None,
    alpha: float | None = None,
    swap_res: int | None = None,
    blend_width: float | None = None,
    inject_k: int | None = None,
    encoder: PathLike | None = None,
    mappers: dict[str, PathLike] | None = None,
) -> StyleInfo:
    """A registered style (default ``demo``), or ``source``/``target`` checkpoints under the name ``style``."""
    extra = {k: str(v) for k, v in (mappers or {}).items()}
    for prompt in extra:
        validate_name(prompt, "mapper prompt name")
    if (source is None) != (target is None):
        raise StyleError("--source and --target go together (the base generator and its fine-tuned version)")
    if source is not None and target is not None:
        src, tgt = Path(source).expanduser().resolve(), Path(target).expanduser().resolve()
        for p, what in ((src, "--source"), (tgt, "--target")):
            if not p.is_file():
                raise StyleError(f"{what} {p} does not exist")
        return StyleInfo(
            name=validate_name(style or "custom"),
            source=str(src),
            target=str(tgt),
            alpha=DEFAULT_ALPHA if alpha is None else alpha,
            swap_res=swap_res,
            blend_width=blend_width,
            inject_k=inject_k or 0,
            encoder=str(encoder) if encoder else None,
            mappers=extra,
        )
    info = get_style(style or DEMO_NAME)
    return dataclasses.replace(
        info,
        alpha=info.alpha if alpha is None else alpha,
        swap_res=info.swap_res if swap_res is None else swap_res,
        blend_width=info.blend_width if blend_width is None else blend_width,
        inject_k=info.inject_k if inject_k is None else inject_k,
        encoder=str(encoder) if encoder else info.encoder,
        mappers={**info.mappers, **extra},
    )


def load_generators(style: StyleInfo) -> tuple[Generator, Generator]:
    try:
        return load_generator(style.source), load_generator(style.target)
    except CheckpointError as e:
        raise StyleError(str(e)) from None


def load_style_encoder(ref: str, generator: Generator) -> Encoder:
    """The encoder of a pSp/e4e checkpoint, checked against ``generator``'s W+."""
    try:
        enc = load_encoder(ref)
    except CheckpointError as e:
        raise StyleError(f"encoder: {e}") from None
    if (enc.n_latent, enc.style_dim) != (generator.n_latent, generator.style_dim):
        raise StyleError(
            f"encoder {ref} produces W+ [{enc.n_latent}, {enc.style_dim}] but the generator takes "
            f"[{generator.n_latent}, {generator.style_dim}]; use an encoder trained for this source generator"
        )
    return enc


def load_style_mapper(prompt: str, path: str, generator: Generator) -> nn.Module:
    try:
        mapper = load_mapper(path, n_latent=generator.n_latent)
    except CheckpointError as e:
        raise StyleError(f"mapper {prompt!r}: {e}") from None
    if mapper.style_dim != generator.style_dim:
        raise StyleError(f"mapper {prompt!r} edits {mapper.style_dim}-d latents; the generator's are {generator.style_dim}-d")
    return mapper


def blend(style: StyleInfo, source: Generator, target: Generator) -> Generator:
    try:
        g = blend_generators(source, target, style.alpha, style.swap_res, style.blend_width)
    except ValueError as e:
        raise StyleError(f"cannot blend style {style.name!r}: {e}") from None
    if not 0 <= style.inject_k <= g.n_latent:
        raise StyleError(f"--inject-k must be in [0, {g.n_latent}], got {style.inject_k}")
    return g


def load_style(style: StyleInfo, *, with_mappers: bool = True) -> StyleModels:
    """Load and blend everything ``style`` names."""
    source, target = load_generators(style)
    g = blend(style, source, target)
    enc = load_style_encoder(style.encoder, g) if style.encoder else None
    mappers = {p: load_style_mapper(p, path, g) for p, path in sorted(style.mappers.items())} if with_mappers else {}
    return StyleModels(style, source, target, g, enc, mappers)
