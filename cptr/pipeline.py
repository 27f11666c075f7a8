"""The product's computation in one object, without a server: photo to cartoon, seeds to faces, text edits.

::

    from cptr.pipeline import Cartoonizer

    toon = Cartoonizer.from_style("demo")
    result = toon.cartoonize("me.jpg")           # .cartoon, .aligned, .pasted, .w_plus
    faces = toon.generate([1, 2, 3], mix=(42, 6))  # .images uint8 [3, S, S, 3], .w_plus
    smiling = toon.edit("me.jpg", "smile")

It runs the very modules ``cptr-export`` turns into the served graphs (:mod:`cptr.export.stages`: the
mapping with its truncation, the synthesis with constant noise, the encoder, the mappers with
latent injection) in PyTorch, and the served Python stages' own NumPy code (:mod:`cptr.serving.stages`:
seeds, style mixing, face alignment, grey photos, paste-back). ``tests/test_pipeline.py`` checks that
the served ensembles give the same W+ and images within 1e-4.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cptr.align import is_grayscale
from cptr.contracts import DEFAULT_TRUNCATION
from cptr.export import stages
from cptr.serving.stages import decode_and_align, grey, mix_latents, paste_into_photo, seed_latents, to_uint8
from cptr.styles import StyleError
from cptr.styles.resolve import StyleModels, load_style, resolve_style

PhotoLike = str | os.PathLike | bytes | np.ndarray | Image.Image


@dataclass(frozen=True)
class Cartoon:
    """One photo, cartoonized."""

    cartoon: np.ndarray  # uint8 [S, S, 3]: the generator's image (grey when the photo is)
    aligned: np.ndarray  # uint8 [A, A, 3]: the aligned face crop the encoder saw (A = its input size)
    pasted: np.ndarray  # uint8 [H, W, 3]: the photo with the cartoon blended in over the face
    w_plus: np.ndarray  # float32 [n_latent, style_dim]: the encoder's latents (after the text edit, if any)
    image: np.ndarray  # float32 [3, S, S] in [-1, 1]: the raw generator output
    transform: np.ndarray  # float32 [3, 3]: pixels of the 256 px aligned crop -> photo pixels


@dataclass(frozen=True)
class Faces:
    """Faces generated from seeds."""

    images: np.ndarray  # uint8 [B, S, S, 3]
    w_plus: np.ndarray  # float32 [B, n_latent, style_dim]
    image: np.ndarray  # float32 [B, 3, S, S] in [-1, 1]


def photo_bytes(photo: PhotoLike) -> bytes:
    """The encoded file of ``photo``: read from a path, kept as bytes, or PNG-encoded (lossless) from pixels."""
    if isinstance(photo, bytes):
        return photo
    if isinstance(photo, (str, os.PathLike)):
        return Path(photo).read_bytes()
    image = photo if isinstance(photo, Image.Image) else Image.fromarray(np.asarray(photo, dtype=np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class Cartoonizer:
    """A style's models in this process (see the module docstring). Build with :meth:`from_style`."""

    def __init__(self, models: StyleModels, truncation: float = DEFAULT_TRUNCATION):
        self.models = models
        self.style = models.style.name
        g = models.generator
        self.size, self.n_latent, self.style_dim = g.size, g.n_latent, g.style_dim
        self.truncation = float(truncation)
        self._mapping = stages.mapping(g, self.truncation).fixed
        self._synthesis = stages.synthesis(g).module
        self._encoder = stages.encoder(models.encoder).module if models.encoder is not None else None
        self._mappers = {p: stages.mapper(m, g, models.style.inject_k).module for p, m in models.mappers.items()}

    @classmethod
    def from_style(cls, style: str = "demo", *, truncation: float = DEFAULT_TRUNCATION, **overrides: object) -> Cartoonizer:
        """A registered style (``cptr styles list``), with any setting overridden: ``alpha``, ``swap_res``,
        ``blend_width``, ``inject_k``, ``encoder``, ``mappers``, or ``source`` and ``target`` checkpoints."""
        return cls(load_style(resolve_style(style, **overrides)), truncation)  # type: ignore[arg-type]

    @property
    def prompts(self) -> list[str]:
        return sorted(self._mappers)

    # --- random faces ------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, seeds: Iterable[int], mix: tuple[int, int] | None = None) -> Faces:
        """Faces for ``seeds`` (the served seed contract); ``mix=(seed2, crossover)`` takes W+ entries
        from ``crossover`` on from ``seed2``'s face (:func:`cptr.serving.stages.mix_latents`)."""
        seeds = [int(s) for s in seeds]
        z = seed_latents(seeds, self.style_dim)
        w = self._mapping(torch.from_numpy(z)).numpy()
        mix_row = np.array([mix if mix is not None else (0, 0)] * len(seeds), dtype=np.int64)
        w_mix = self._mapping(torch.from_numpy(seed_latents(mix_row[:, 0], self.style_dim))).numpy() if mix is not None else w
        w_plus = mix_latents(w, w_mix, mix_row, self.n_latent)
        image = self._synthesis(torch.from_numpy(w_plus)).numpy()
        return Faces(np.stack([to_uint8(im) for im in image]), w_plus, image)

    # --- photos ------------------------------------------------------------------------------------

    @torch.no_grad()
    def cartoonize(self, photo: PhotoLike, prompt: str | None = None) -> Cartoon:
        """``photo`` (a path, file bytes, an RGB array or a PIL image) -> :class:`Cartoon`; ``prompt`` edits
        the latents with that text mapper first. Errors: those of :mod:`cptr.align` (no face, ...)."""
        if self._encoder is None:
            raise StyleError(f"style {self.style!r} has no encoder, so it cannot cartoonize photos; give one with encoder=...")
        if prompt is not None and prompt not in self._mappers:
            raise StyleError(f"style {self.style!r} has no text mapper {prompt!r} (it has: {', '.join(self.prompts) or 'none'})")
        data = photo_bytes(photo)
        rgb, crop, transform = decode_and_align(data, size=int(self._encoder.input_size))
        w_plus = self._encoder(torch.from_numpy(crop[None]))
        if prompt is not None:
            w_plus = self._mappers[prompt](w_plus)
        image = self._synthesis(w_plus)[0].numpy()
        cartoon = to_uint8(image)
        if is_grayscale(data):
            cartoon = grey(cartoon)
        aligned = to_uint8(crop)
        return Cartoon(cartoon, aligned, paste_into_photo(rgb, cartoon, transform), w_plus[0].numpy(), image, transform)

    def edit(self, photo: PhotoLike, prompt: str) -> Cartoon:
        """:meth:`cartoonize` with the text mapper ``prompt`` (e.g. ``"smile"``)."""
        return self.cartoonize(photo, prompt)

    def cartoonize_many(self, photos: Sequence[PhotoLike], prompt: str | None = None) -> list[Cartoon]:
        return [self.cartoonize(p, prompt) for p in photos]
