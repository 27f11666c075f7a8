"""``cptr-train eval`` as a library: score a generator (or a folder of images) against a data set.

One :class:`EvalReport` per set of images: FID and KID against the reference images (features from
the FID Inception when its weights are given, else from the face critic), the mediapipe face rate,
and the face critic's verdicts (share called cartoon, mean attributes). :func:`evaluate_with_baselines`
adds the two rows every figure needs beside it: an *untrained* generator of the same architecture
(the ceiling) and *data against data* (other renders of the same domain, the floor).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cptr.data.critic import FaceCritic, critic_scores, load_critic
from cptr.data.datasets import open_dataset
from cptr.data.faces import ATTRIBUTES
from cptr.data.inception import load_fid_inception
from cptr.data.metrics import FaceDetector, fid, kid
from cptr.imaging import grid as image_grid
from cptr.imaging import save_image, to_uint8
from cptr.io import atomic_write_text
from cptr.models.checkpoints import load_generator
from cptr.models.stylegan2 import Generator

FeatureFn = Callable[[torch.Tensor], np.ndarray]


@dataclass
class EvalReport:
    """Scores of one image set against a reference set."""

    name: str
    n: int
    features: str  # "critic" or "inception"
    fid: float
    kid: float
    kid_std: float
    face_rate: float
    cartoon_rate: float
    attributes: dict[str, float] = field(default_factory=dict)  # critic's mean prediction

    def summary(self) -> str:
        return (
            f"{self.name}: FID {self.fid:.2f}, KID {self.kid * 1e3:.2f}e-3 ({self.features} features), "
            f"faces {self.face_rate:.1%}, called cartoon {self.cartoon_rate:.1%} (n={self.n})"
        )

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def sample_generator(g, n: int, truncation: float = 1.0, seed: int = 0, batch: int = 50, noise_mode: str = "const") -> torch.Tensor:
    """``n`` faces [n, 3, S, S] in [-1, 1] from ``g`` (z from ``seed``, truncation toward ``latent_avg``;
    ``noise_mode`` as :meth:`~cptr.models.stylegan2.Generator.noise_maps`, default the stored maps)."""
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(n, g.style_dim, generator=gen)
    centre = g.latent_avg if getattr(g, "latent_avg", None) is not None else g.mean_latent(4096)
    out = []
    for i in range(0, n, batch):
        w = g.style(z[i : i + batch])
        w = centre.reshape(1, -1) + truncation * (w - centre.reshape(1, -1))
        img, _ = g([w], input_is_latent=True, noise=g.noise_maps(noise_mode, len(w), noise_gen))
        out.append(img.clamp(-1, 1))
    return torch.cat(out)


def load_images(path: str | os.PathLike, n: int, size: int) -> torch.Tensor:
    """The first ``n`` images of a folder or LMDB data set, [n, 3, size, size] in [-1, 1]."""

    ds = open_dataset(str(path), size, workers=4)
    if len(ds) < n:
        raise ValueError(f"{path} has {len(ds)} images; {n} were asked for")
    return torch.stack([ds[i] for i in range(n)])


def critic_features(critic: FaceCritic) -> FeatureFn:
    return lambda images: critic_scores(critic, images).features.numpy()


def inception_features(path: str | os.PathLike) -> FeatureFn:
    net = load_fid_inception(path)

    @torch.no_grad()
    def fn(images: torch.Tensor) -> np.ndarray:
        return torch.cat([net(images[i : i + 50]) for i in range(0, len(images), 50)]).numpy()

    return fn


def evaluate_images(
    name: str,
    images: torch.Tensor,
    reference_features: np.ndarray,
    features: FeatureFn,
    feature_name: str,
    critic: FaceCritic,
    detector: FaceDetector | None,
) -> EvalReport:
    """Score ``images`` [N, 3, H, W] in [-1, 1] against precomputed reference features."""
    f = features(images)
    k_mean, k_std = kid(f, reference_features)
    out = critic_scores(critic, images)
    attrs = {a: float(v) for a, v in zip(ATTRIBUTES, out.attributes.mean(0).tolist())}
    face_rate = detector.rate(to_uint8(images)) if detector is not None else float("nan")
    return EvalReport(
        name,
        len(images),
        feature_name,
        fid(f, reference_features),
        k_mean,
        k_std,
        face_rate,
        float((out.domain_logit > 0).float().mean()),
        attrs,
    )


def evaluate_with_baselines(
    generator_path: str | os.PathLike,
    data: str | os.PathLike,
    n: int = 500,
    truncation: float = 1.0,
    inception: str | os.PathLike | None = None,
    critic: FaceCritic | None = None,
    faces: bool = True,
    seed: int = 0,
    noise_mode: str = "const",
    grid: str | os.PathLike | None = None,
) -> list[EvalReport]:
    """The generator, an untrained generator of its architecture, and data against data (images
    ``n .. 2n-1`` of ``data`` against images ``0 .. n-1``), all against the first ``n`` images of ``data``."""

    g = load_generator(generator_path)
    critic = critic or load_critic()
    feats, fname = (inception_features(inception), "inception") if inception else (critic_features(critic), "critic")
    detector = FaceDetector() if faces else None
    data_imgs = load_images(data, 2 * n, g.size)
    ref = feats(data_imgs[:n])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        untrained = Generator(**g.config()).eval()
    samples = sample_generator(g, n, truncation, seed, noise_mode=noise_mode)
    if grid is not None:
        save_image(image_grid(to_uint8(samples[:16]), cols=8), grid)
    rows = [
        ("generator", samples),
        ("untrained", sample_generator(untrained, n, truncation, seed, noise_mode=noise_mode)),
        ("data vs data", data_imgs[n:]),
    ]
    return [evaluate_images(name, imgs, ref, feats, fname, critic, detector) for name, imgs in rows]


def write_report(rows: list[EvalReport], path: str | os.PathLike, extra: dict | None = None) -> None:
    """JSON report, written atomically."""
    import json

    atomic_write_text(Path(path), json.dumps({**(extra or {}), "rows": [r.as_dict() for r in rows]}, indent=2) + "\n")
