"""Networks in pure PyTorch with rosinality-compatible parameter names.

The names below load on first use (PEP 562): :mod:`cptr.models.latents`' NumPy rule is imported by
the served stages, which must not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Encoder": "cptr.models.encoder",
    "LevelsMapper": "cptr.models.mapper",
    "Discriminator": "cptr.models.stylegan2",
    "Generator": "cptr.models.stylegan2",
    "set_fused_modconv": "cptr.models.stylegan2",
}

__all__ = ["Discriminator", "Encoder", "Generator", "LevelsMapper", "set_fused_modconv"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cptr.models' has no attribute {name!r}")
