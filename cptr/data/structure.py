"""Structure kept, judged by a landmark model this project never trained: mediapipe's 468-point face mesh.

The promise of the method is that the cartoon keeps the input's face: where the features sit, their
shape, the pose and the expression. The face critic (:mod:`cptr.data.critic`) learnt the renderer's
own labels and helped train the models, so it cannot certify that; the face mesh (the ``face_mesh``
solution of mediapipe 0.10.21, static image mode) can. Per image it gives four numbers:

* ``roll``: the angle of the eye line, in degrees (eye corners 33/133 and 362/263);
* ``yaw``: the nose tip's (1) offset from the eyes' midpoint along the eye line, over the eye distance;
* ``mouth``: the lips' opening (13 to 14) over the eye distance;
* ``height``: the face's height (10, forehead, to 152, chin) over the image side.

Two sets of images that should show the same faces (a photo and its cartoon) are compared by the
Pearson correlation of each number over the pairs where the mesh found a face in both. Every figure is
given with its **ceiling**, the renderer's own photo and cartoon of one seed (what a perfect cartoon
model would keep), and its **floor**, the same pairs shuffled (a model that ignores its input).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from cptr.align import AlignError, align_face, detect_landmarks
from cptr.contracts import DEFAULT_TRUNCATION
from cptr.data.faces import render_face
from cptr.data.render import render_batch
from cptr.imaging import to_uint8
from cptr.models.latents import render, sample_latents
from cptr.models.stylegan2 import Generator

HELD_OUT_SEED = 9_000_000  # renders never used in training (photo seeds 0..19,999; critics 5,000,000+, 6,000,000+)
MESH_SIZE = 256  # images are enlarged to this side first: the mesh expects faces of photo size
FEATURES: tuple[str, ...] = ("roll", "yaw", "mouth", "height")
# Landmark indices of the 468-point mesh (image-left eye first).
_EYE_A, _EYE_B = (33, 133), (362, 263)
_NOSE_TIP, _LIP_UP, _LIP_DOWN, _FOREHEAD, _CHIN = 1, 13, 14, 10, 152


def mesh_geometry(points: np.ndarray, side: float) -> np.ndarray:
    """The :data:`FEATURES` of one face from its mesh points ``(468, 2)`` in pixels of an image of ``side``."""
    pts = np.asarray(points, np.float64)
    eye_a, eye_b = pts[list(_EYE_A)].mean(0), pts[list(_EYE_B)].mean(0)
    line = eye_b - eye_a
    dist = float(np.hypot(*line))
    if dist <= 0:
        return np.full(len(FEATURES), np.nan)
    unit = line / dist
    roll = float(np.degrees(np.arctan2(line[1], line[0])))
    yaw = float((pts[_NOSE_TIP] - (eye_a + eye_b) / 2) @ unit / dist)
    mouth = float(np.hypot(*(pts[_LIP_DOWN] - pts[_LIP_UP])) / dist)
    height = float(np.hypot(*(pts[_CHIN] - pts[_FOREHEAD])) / side)
    return np.array([roll, yaw, mouth, height])


class FaceMesh:
    """mediapipe's face mesh in static image mode, one face per image (thread-safe)."""

    def __init__(self, min_confidence: float = 0.5) -> None:
        try:  # optional heavy dependency (the align extra)
            from mediapipe.python.solutions import face_mesh
        except ImportError as e:
            raise ImportError(f"the structure judge needs mediapipe ({e}); install it with: pip install 'cptr[align]'") from None
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=min_confidence
        )
        self._lock = threading.Lock()

    def points(self, image: np.ndarray) -> np.ndarray | None:
        """Mesh points ``(468, 2)`` in pixels of ``image`` (uint8 ``[H, W, 3]``), or None without a face."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        big = np.asarray(Image.fromarray(image).resize((MESH_SIZE, MESH_SIZE), Image.BICUBIC))
        with self._lock:
            result = self._mesh.process(np.ascontiguousarray(big))
        if not result.multi_face_landmarks:
            return None
        lms = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * w, p.y * h) for p in lms], np.float64)

    def geometry(self, images: np.ndarray) -> np.ndarray:
        """``[N, len(FEATURES)]`` for uint8 images ``[N, H, W, 3]``; a row of NaN where no face is found."""
        out = np.full((len(images), len(FEATURES)), np.nan)
        for i, im in enumerate(images):
            pts = self.points(np.asarray(im))
            if pts is not None:
                out[i] = mesh_geometry(pts, float(max(im.shape[:2])))
        return out


@dataclass(frozen=True)
class StructureReport:
    """Correlations of :data:`FEATURES` between paired images, with the pairs they came from."""

    corr: dict[str, float]
    n_pairs: int
    n: int
    std_a: dict[str, float] = field(default_factory=dict)
    std_b: dict[str, float] = field(default_factory=dict)

    def ratio(self, ceiling: StructureReport) -> dict[str, float]:
        """Each correlation over the ceiling's."""
        return {k: self.corr[k] / ceiling.corr[k] for k in self.corr if ceiling.corr.get(k)}

    def as_dict(self) -> dict:
        return {"corr": self.corr, "n_pairs": self.n_pairs, "n": self.n, "std_a": self.std_a, "std_b": self.std_b}


def paired_correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Pearson correlation of two series over the entries finite in both, and how many there were (NaN when
    fewer than 3, or when either is constant there)."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if ok.sum() < 3 or a.std() == 0 or b.std() == 0:
        return float("nan"), int(ok.sum())
    return float(np.corrcoef(a, b)[0, 1]), int(ok.sum())


def compare(geom_a: np.ndarray, geom_b: np.ndarray, features: tuple[str, ...] = FEATURES) -> StructureReport:
    """Per-feature Pearson correlation of two ``[N, 4]`` geometry arrays over the rows found in both."""
    if geom_a.shape != geom_b.shape:
        raise ValueError(f"paired geometry must have one shape, got {geom_a.shape} and {geom_b.shape}")
    ok = ~(np.isnan(geom_a).any(1) | np.isnan(geom_b).any(1))
    corr, sa, sb = {}, {}, {}
    for name in features:
        j = FEATURES.index(name)
        a, b = geom_a[ok, j], geom_b[ok, j]
        corr[name] = paired_correlation(a, b)[0]
        sa[name], sb[name] = float(a.std()) if ok.any() else float("nan"), float(b.std()) if ok.any() else float("nan")
    return StructureReport(corr=corr, n_pairs=int(ok.sum()), n=len(geom_a), std_a=sa, std_b=sb)


def shuffled(geom_a: np.ndarray, geom_b: np.ndarray, seed: int = 0, features: tuple[str, ...] = FEATURES) -> StructureReport:
    """The floor: the same images paired at random (what a model that ignores its input keeps)."""
    perm = np.random.default_rng(seed).permutation(len(geom_b))
    return compare(geom_a, geom_b[perm], features)


def render_pairs(n: int, seed0: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The renderer's photo and cartoon of seeds ``seed0 ..``: uint8 ``[n, size, size, 3]`` each (the ceiling's pairs)."""
    seeds = range(seed0, seed0 + n)
    return render_batch(seeds, "photo", size)[0], render_batch(seeds, "cartoon", size)[0]


@dataclass(frozen=True)
class JudgedStructure:
    """One structure figure with its ceiling (the renderer's own pairs) and its floor (pairs shuffled)."""

    measured: StructureReport
    ceiling: StructureReport
    floor: StructureReport

    def ratios(self) -> dict[str, float]:
        """Each measured correlation over its ceiling's."""
        return self.measured.ratio(self.ceiling)

    def as_dict(self) -> dict:
        return {
            "measured": self.measured.as_dict(),
            "ceiling": self.ceiling.as_dict(),
            "floor": self.floor.as_dict(),
            "ratio": self.ratios(),
        }


def _mesh_of(mesh: FaceMesh, images: torch.Tensor) -> np.ndarray:
    return mesh.geometry(to_uint8(images))


@torch.no_grad()
def generator_structure(
    source: Generator,
    target: Generator,
    n: int = 200,
    truncation: float = DEFAULT_TRUNCATION,
    seed: int = 0,
    mesh: FaceMesh | None = None,
    aligned: bool = True,
    pairs: AlignedPairs | None = None,
    batch: int = 50,
) -> JudgedStructure:
    """source(W) against target(W) on ``n`` latents of the source's mapping network (truncated towards its mean).

    Ceiling: the renderer's photo and cartoon of held-out seeds, FFHQ-aligned (``aligned``, for models trained on
    aligned faces, as FFHQ's are; ``pairs`` when already made) or as rendered at the generators' size."""
    mesh = mesh or FaceMesh()
    w = sample_latents(source, n, truncation, seed)
    gs = np.concatenate([_mesh_of(mesh, render(source, w[i : i + batch])) for i in range(0, n, batch)])
    gt = np.concatenate([_mesh_of(mesh, render(target, w[i : i + batch])) for i in range(0, n, batch)])
    if aligned:
        pairs = pairs or aligned_render_pairs(n)
        photos, cartoons = pairs.photo_crops, pairs.cartoon_crops
    else:
        photos, cartoons = render_pairs(n, HELD_OUT_SEED, source.size)
    return JudgedStructure(compare(gs, gt), compare(mesh.geometry(photos), mesh.geometry(cartoons)), shuffled(gs, gt))


@dataclass(frozen=True)
class AlignedPairs:
    """Held-out renders of one set of seeds: the photos as rendered, and the photo and cartoon FFHQ-aligned."""

    photos: np.ndarray  # uint8 [N, size, size, 3], what a user would send
    photo_crops: np.ndarray  # uint8 [N, 256, 256, 3], what the server's alignment makes of them
    cartoon_crops: np.ndarray  # the renderer's cartoon of the same seeds, aligned the same way
    seeds: list[int]


def aligned_render_pairs(n: int, seed0: int = HELD_OUT_SEED, size: int = 256) -> AlignedPairs:
    """Held-out photo and cartoon renders at ``size``, each FFHQ-aligned as the server aligns a photo (256 px crops);
    seeds where either cannot be aligned are left out."""
    photos, crops, cartoons, seeds = [], [], [], []
    for seed in range(seed0, seed0 + n):
        images = [render_face(seed, domain, size)[0] for domain in ("photo", "cartoon")]
        try:
            aligned = [align_face(im, detect_landmarks(im)[0]).crop for im in images]
        except AlignError:
            continue
        photos.append(images[0])
        crops.append(aligned[0])
        cartoons.append(aligned[1])
        seeds.append(seed)
    return AlignedPairs(np.stack(photos), np.stack(crops), np.stack(cartoons), seeds)


def photo_structure(
    cartoonize: Callable[[AlignedPairs], np.ndarray], pairs: AlignedPairs | None = None, n: int = 200, mesh: FaceMesh | None = None
) -> JudgedStructure:
    """Photo to cartoon: ``cartoonize`` turns held-out renders (``pairs.photos``, as a user sends them, or
    ``pairs.photo_crops``, already aligned as the server aligns them) into cartoons (uint8 ``[B, S, S, 3]``); the mesh
    compares each aligned photo with its cartoon. Ceiling: the aligned photo render against the aligned cartoon render
    of the same seed. Alignment removes roll, so roll is noise here."""
    mesh = mesh or FaceMesh()
    pairs = pairs or aligned_render_pairs(n)
    gp = mesh.geometry(pairs.photo_crops)
    out = mesh.geometry(np.asarray(cartoonize(pairs)))
    return JudgedStructure(compare(gp, out), compare(gp, mesh.geometry(pairs.cartoon_crops)), shuffled(gp, out))


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``[H, W, 3]`` image (what a client sends the server)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
