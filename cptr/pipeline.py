"""The product's computation in one object, without a server: photo to cartoon, seeds to faces, text edits.

::

    from cptr.pipeline import Cartoonizer

    toon = Cartoonizer.from_style("demo")
    result = toon.cartoonize("me.jpg")           # .cartoon, .aligned, .pasted, .w_plus
    group = toon.cartoonize_faces("us.jpg")      # every face: .cartoons [F, S, S, 3], .composite, .w_plus [F, ...]
    faces = toon.generate([1, 2, 3], mix=(42, 6))  # .images uint8 [3, S, S, 3], .w_plus
    smiling = toon.edit("me.jpg", "smile")

It runs the very modules ``cptr-export`` turns into the served graphs (:mod:`cptr.export.stages`: the
mapping with its truncation, the synthesis with constant noise, the encoder, the mappers with
latent injection) in PyTorch, and the served Python stages' own NumPy code (:mod:`cptr.serving.stages`:
seeds, style mixing, face alignment, grey photos, paste-back). ``tests/test_serving.py`` checks that
the served ensembles give the same W+ and images within 1e-4, for one face and for every face of a group photo,
and that a video through the served encoder and synthesis equals one through :meth:`Cartoonizer.face_stages`.
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
from cptr.client.video import FaceStages
from cptr.contracts import DEFAULT_TRUNCATION, MAX_FACES_PER_PHOTO
from cptr.export import stages
from cptr.imaging import array_to_uint8
from cptr.serving.stages import composite, decode_and_align_faces, grey, mix_latents, seed_latents
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
class FaceCartoons:
    """Every face of one photo, cartoonized as one batch (largest face first)."""

    cartoons: np.ndarray  # uint8 [F, S, S, 3] (grey when the photo is)
    aligned: np.ndarray  # uint8 [F, A, A, 3]: the aligned crops the encoder saw
    composite: np.ndarray  # uint8 [H, W, 3]: the photo with every cartoon pasted back
    w_plus: np.ndarray  # float32 [F, n_latent, style_dim]
    image: np.ndarray  # float32 [F, 3, S, S] in [-1, 1]
    transforms: np.ndarray  # float32 [F, 3, 3]: pixels of each 256 px aligned crop -> photo pixels


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
        return Faces(array_to_uint8(image), w_plus, image)

    # --- photos ------------------------------------------------------------------------------------

    def _check(self, prompt: str | None) -> None:
        if self._encoder is None:
            raise StyleError(f"style {self.style!r} has no encoder, so it cannot cartoonize photos; give one with encoder=...")
        if prompt is not None and prompt not in self._mappers:
            raise StyleError(f"style {self.style!r} has no text mapper {prompt!r} (it has: {', '.join(self.prompts) or 'none'})")

    @torch.no_grad()
    def encode(self, aligned: np.ndarray, prompt: str | None = None) -> np.ndarray:
        """Aligned crops float32 ``[N, 3, A, A]`` in [-1, 1] -> W+ ``[N, n_latent, style_dim]`` (edited by ``prompt``'s mapper)."""
        self._check(prompt)
        w_plus = self._encoder(torch.from_numpy(np.ascontiguousarray(aligned, np.float32)))  # type: ignore[misc]
        return (self._mappers[prompt](w_plus) if prompt is not None else w_plus).numpy()

    @torch.no_grad()
    def synthesize(self, w_plus: np.ndarray) -> np.ndarray:
        """W+ ``[N, n_latent, style_dim]`` -> images float32 ``[N, 3, S, S]`` in [-1, 1]."""
        return self._synthesis(torch.from_numpy(np.ascontiguousarray(w_plus, np.float32))).numpy()

    def face_stages(self, prompt: str | None = None) -> FaceStages:
        """This style's encoder (and ``prompt``'s mapper) and synthesis for :func:`cptr.client.video.cartoonize_video`,
        in this process: what :func:`cptr.client.video.served_stages` asks a server for."""
        self._check(prompt)
        return FaceStages(int(self._encoder.input_size), lambda a: self.encode(a, prompt), self.synthesize, MAX_FACES_PER_PHOTO)  # type: ignore[union-attr]

    def cartoonize_faces(
        self, photo: PhotoLike, prompt: str | None = None, *, largest: bool = False, max_faces: int = MAX_FACES_PER_PHOTO
    ) -> FaceCartoons:
        """Every face of ``photo`` above ``contracts.MIN_FACE_SIZE`` (or its largest face only), cartoonized as one
        batch, and the composite with every cartoon pasted back: what one request to the served
        ``cartoonize_<style>`` ensemble returns. More than ``max_faces`` faces is refused (too_many_faces)."""
        self._check(prompt)
        data = photo_bytes(photo)
        rgb, crops, transforms = decode_and_align_faces(data, size=int(self._encoder.input_size), largest=largest, max_faces=max_faces)  # type: ignore[union-attr]
        w_plus = self.encode(crops, prompt)
        image = self.synthesize(w_plus)
        cartoons = array_to_uint8(image)
        if is_grayscale(data):
            cartoons = np.stack([grey(c) for c in cartoons])
        aligned = array_to_uint8(crops)
        return FaceCartoons(cartoons, aligned, composite(rgb, list(cartoons), list(transforms)), w_plus, image, transforms)

    def cartoonize(self, photo: PhotoLike, prompt: str | None = None) -> Cartoon:
        """``photo`` (a path, file bytes, an RGB array or a PIL image) -> :class:`Cartoon` of its largest face; ``prompt``
        edits the latents with that text mapper first. Errors: those of :mod:`cptr.align` (no face, ...)."""
        group = self.cartoonize_faces(photo, prompt, largest=True)
        rgb = group.composite  # one face: the composite is that face pasted back
        return Cartoon(group.cartoons[0], group.aligned[0], rgb, group.w_plus[0], group.image[0], group.transforms[0])

    def edit(self, photo: PhotoLike, prompt: str) -> Cartoon:
        """:meth:`cartoonize` with the text mapper ``prompt`` (e.g. ``"smile"``)."""
        return self.cartoonize(photo, prompt)

    def cartoonize_many(self, photos: Sequence[PhotoLike], prompt: str | None = None) -> list[Cartoon]:
        return [self.cartoonize(p, prompt) for p in photos]
