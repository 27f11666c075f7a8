"""The built-in ``demo`` style's files: models CPTR trained itself, shipped in the package.

The one home of where they are and how ``cptr-export --style demo`` blends them; :mod:`cptr.demo`
(which trains, measures and runs them) and the style registry both read these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cptr.models.encoder import Encoder
    from cptr.models.stylegan2 import Generator

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


def demo_generators(device: str = "cpu") -> tuple[Generator, Generator]:
    """``(source, target)``: the shipped demo generators, in eval mode with ``latent_avg``."""
    from cptr.models.checkpoints import load_generator  # torch only when models load: `cptr styles` stays quick

    missing = [p for p in (SOURCE, TARGET) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the demo models are missing ({', '.join(p.name for p in missing)} in {ASSET_DIR}); {TRAIN_HINT}")
    return load_generator(SOURCE, device=device).requires_grad_(False), load_generator(TARGET, device=device).requires_grad_(False)


def demo_encoder() -> Encoder:
    """The demo style's shipped encoder (``cptr/assets/demo/encoder.pt``, trained by
    ``python -m cptr.demo.train``), in eval mode."""
    from cptr.models.encoder import load_encoder  # torch only when models load

    if not ENCODER.is_file():
        raise FileNotFoundError(f"the demo encoder {ENCODER} is missing; {TRAIN_HINT}")
    return load_encoder(ENCODER).requires_grad_(False)
