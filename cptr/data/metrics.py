"""Measurements that judge a generator: FID, KID and the mediapipe face-detection rate.

* **FID** (Heusel et al.): ``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between Gaussians fitted to
  two sets of features. The matrix square root is taken from the eigendecomposition of
  ``S1^(1/2) S2 S1^(1/2)`` (symmetric, so real), which gives the same trace.
* **KID** (Binkowski et al.): the unbiased MMD^2 estimate with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1)^3``, averaged over random subsets (as clean-fid and torch-fidelity do).
* **Sharpness**: the mean gradient magnitude of an image's luma (BT.601, in [0, 1]) per pixel, at the image's own
  size. Blur lowers it where there is fine detail (lines, texture: their contrast fades); one monotone edge scores
  its step however smeared. Per pixel, so only images of one size compare.
* **Face rate**: the share of images in which mediapipe's full-range face detector, the one
  CPTR aligns photos with, finds a face (images are enlarged to 256 px first, as it expects faces
  of photo size).

Features come from the standard FID Inception-v3 when its weights are given (``--inception``), and
otherwise from the face critic's trunk (:mod:`cptr.data.critic`), trained on the procedural renders;
the two scales are not comparable, so every report names its feature network.
"""

from __future__ import annotations

import numpy as np

from cptr.imaging import LUMA

DETECT_SIZE = 256


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased) of ``features`` [N, D], in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """FID between N(mu1, s1) and N(mu2, s2)."""
    mu1, mu2, s1, s2 = (np.asarray(v, np.float64) for v in (mu1, mu2, s1, s2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    r1 = _sqrtm_psd(s1)
    cross = _sqrtm_psd(r1 @ s2 @ r1)  # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2)
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross)))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D]."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of ``x`` [n, D] and ``y`` [m, D] with the cubic polynomial kernel."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``subsets`` random subsets of ``min(subset_size, N, M)`` samples each."""
    a, b = np.asarray(features_a), np.asarray(features_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D], got {a.shape} and {b.shape}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    vals = [polynomial_mmd2(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals))


def sharpness(images: np.ndarray) -> float:
    """Mean gradient magnitude of the luma of uint8 ``images`` [N, H, W, 3] (or one [H, W, 3]), luma in [0, 1],
    central differences inside, one-sided at the borders (:func:`numpy.gradient`)."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8 or min(x.shape[1:3]) < 2:
        raise ValueError(f"expected uint8 images [N, H >= 2, W >= 2, 3], got {x.dtype} {x.shape}")
    y = (x.astype(np.float64) / 255.0) @ np.asarray(LUMA)
    gy, gx = np.gradient(y, axis=(1, 2))
    return float(np.sqrt(gx**2 + gy**2).mean())


class FaceDetector:
    """mediapipe's full-range face detector (the one :mod:`cptr.align` uses), for counting faces."""

    def __init__(self, min_confidence: float = 0.5) -> None:
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as e:
            raise ImportError(f"the face rate needs mediapipe ({e}); install it with: pip install 'cptr[align]'") from None
        self._det = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)

    def has_face(self, image: np.ndarray) -> bool:
        """Whether a face is found in one uint8 [H, W, 3] image (enlarged to 256 px when smaller)."""
        from PIL import Image

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
        if max(image.shape[:2]) < DETECT_SIZE:
            image = np.asarray(Image.fromarray(image).resize((DETECT_SIZE, DETECT_SIZE), Image.BICUBIC))
        return bool(self._det.process(np.ascontiguousarray(image)).detections)

    def rate(self, images: np.ndarray) -> float:
        """Share of ``images`` [N, H, W, 3] uint8 with a face."""
        if len(images) == 0:
            raise ValueError("no images")
        return float(np.mean([self.has_face(im) for im in images]))
