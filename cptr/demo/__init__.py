"""The embedded ``demo`` style: models CPTR trained itself, shipped in the package.

No FFHQ, cartoon data set, CLIP or ArcFace weights can be had on a fresh machine, so the demo's
models were trained by :mod:`cptr.demo.train` (``python -m cptr.demo.train``) on procedural faces
(:mod:`cptr.data.faces`), with CPTR's own commands:

* ``source.pt``: a 64 px StyleGAN2 trained from scratch on photo-domain renders (``cptr-train source``);
* ``target.pt``: its FreezeSG fine-tune on cartoon-domain renders with the structure loss
  (``cptr-train finetune``);
* ``encoder.pt``: an image -> W+ encoder for the source (``cptr-train encoder``);
* ``mapper_smile.pt``: a levels mapper for "a smiling face" (``cptr-train mapper``) whose text loss is
  a stand-in, the face critic's smile score (:class:`cptr.data.critic.AttributeLoss`).

``MODEL_CARD.md`` beside them says how they were made, what they score, their limits and hashes.
"""

from __future__ import annotations

from pathlib import Path

DEMO_NAME = "demo"
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"
SOURCE, TARGET, ENCODER = ASSET_DIR / "source.pt", ASSET_DIR / "target.pt", ASSET_DIR / "encoder.pt"
MAPPERS = {"smile": ASSET_DIR / "mapper_smile.pt"}
CARD = ASSET_DIR / "MODEL_CARD.md"
# What `cptr-export --style demo` serves: the blend of the two demo generators (cptr.styles.blend).
SERVED_ALPHA = 1.0  # measured: alpha 0.85 halves the critic's cartoon rate of served photos (32% -> 15%) and keeps no more structure
SERVED_SWAP_RES: int | None = None
TRAIN_HINT = "rebuild them with: python -m cptr.demo.train"


def missing_assets() -> list[Path]:
    """Demo model files that are not in the package (empty when the demo is complete)."""
    return [p for p in (SOURCE, TARGET, ENCODER, *MAPPERS.values()) if not p.is_file()]


def demo_generators(device: str = "cpu"):
    """``(source, target)``: the shipped demo generators, in eval mode with ``latent_avg``."""
    from cptr.models.checkpoints import load_generator

    missing = [p for p in (SOURCE, TARGET) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the demo models are missing ({', '.join(p.name for p in missing)} in {ASSET_DIR}); {TRAIN_HINT}")
    return load_generator(SOURCE, device=device).requires_grad_(False), load_generator(TARGET, device=device).requires_grad_(False)
