"""Pick the source checkpoint to ship by its face rate (the demo recipe's ``select`` step).

A GAN's sample quality wanders from one checkpoint to the next (the first demo run: 74.6% of samples
were faces at 6000 iterations, 67.3% at 7000, 65.0% at 8000), so, like the best-FID snapshot of
NVlabs' training runs, the recipe keeps every checkpoint of the second half of the source run and
ships the one whose samples mediapipe most often finds a face in. The choice is made on latents of
their own seed (:data:`SELECT_SEED`), not the ones the model card is measured on, so the card's figure
is not the maximum of the numbers it was chosen from.

The samples are drawn with the noise mode the source is shipped with (``none``: the per-pixel noise
strengths are zeroed, NVlabs' ``noise_mode='none'``; :func:`bake` writes that file).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cptr.contracts import DEFAULT_TRUNCATION
from cptr.data.metrics import FaceDetector
from cptr.imaging import to_uint8
from cptr.io import atomic_path
from cptr.models.checkpoints import load_generator, save_generator
from cptr.models.stylegan2 import NOISE_MODES
from cptr.training.freeze import silence_noise
from cptr.training.mapper_train import sample_latents

SELECT_SEED = 7  # latents of the selection; the model card measures on seed 0
TRUNCATION = DEFAULT_TRUNCATION


@dataclass(frozen=True)
class Selection:
    """The chosen checkpoint and every candidate's face rate."""

    chosen: str
    rates: dict[str, float]
    n: int
    seed: int
    truncation: float
    noise_mode: str = "const"


def checkpoint_iteration(path: Path) -> int:
    """``000250.pt`` -> 250."""
    try:
        return int(path.stem)
    except ValueError:
        raise ValueError(f"not a numbered checkpoint: {path}") from None


def candidates(run: Path, first: int, last: int) -> list[Path]:
    """Numbered checkpoints of ``run/checkpoints`` with ``first <= iteration <= last``, oldest first."""
    out = [p for p in sorted((run / "checkpoints").glob("[0-9]*.pt")) if first <= checkpoint_iteration(p) <= last]
    if not out:
        raise FileNotFoundError(f"no checkpoint between iterations {first} and {last} in {run / 'checkpoints'}")
    return out


@torch.no_grad()
def face_rate(
    ckpt: Path, n: int, seed: int = SELECT_SEED, truncation: float = TRUNCATION, detector=None, noise_mode: str = "const"
) -> float:
    """mediapipe face rate of ``n`` truncated samples of the ``g_ema`` in ``ckpt``."""

    g = load_generator(ckpt)
    w = sample_latents(g, n, truncation, seed)
    gen = torch.Generator().manual_seed(seed)
    chunks = w.split(50)
    images = torch.cat([g([c], input_is_latent=True, noise=g.noise_maps(noise_mode, len(c), gen))[0] for c in chunks])
    return (detector or FaceDetector()).rate(to_uint8(images))


def select(run: Path, first: int, last: int, n: int, out: Path, noise_mode: str = "const") -> Selection:
    """Measure every candidate, write ``out`` (JSON, atomically) and return the choice (the highest
    rate; the later checkpoint on a tie)."""

    det = FaceDetector()
    rates: dict[str, float] = {}
    for ckpt in candidates(run, first, last):
        rates[ckpt.name] = face_rate(ckpt, n, detector=det, noise_mode=noise_mode)
        print(f"select: {ckpt.name} face rate {rates[ckpt.name]:.1%} (n={n})", flush=True)
    best = max(rates, key=lambda k: (rates[k], checkpoint_iteration(Path(k))))
    sel = Selection(
        chosen=str(run / "checkpoints" / best), rates=rates, n=n, seed=SELECT_SEED, truncation=TRUNCATION, noise_mode=noise_mode
    )
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(asdict(sel), indent=2))
    print(f"select: chose {best} ({rates[best]:.1%})", flush=True)
    return sel


def chosen(out: Path) -> Path | None:
    """The checkpoint a finished selection chose, or None when there is none yet."""
    if not out.exists():
        return None
    return Path(json.loads(out.read_text())["chosen"])


def bake(ckpt: Path, out: Path, noise_mode: str) -> Path:
    """The shipped source: ``ckpt``'s ``g_ema`` (and ``latent_avg``) alone, with the per-pixel noise
    strengths zeroed when ``noise_mode`` is ``none`` (then every consumer, the exported graphs
    included, synthesises without noise). Written atomically; returns ``out``."""

    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
    g = load_generator(ckpt)
    if noise_mode == "none":
        silence_noise(g)
    save_generator(g, out)
    return out
