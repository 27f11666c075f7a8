"""The tiny training configuration: what the tests train, and what ``benchmarks/train_tiny.py`` measures.

Plain data (no pytest), so that the benchmark imports the very settings the tests use.
"""

from __future__ import annotations

from typing import Any

# Per-resolution widths of the tiny models (32 px with style_dim 64 and n_mlp 2 builds in milliseconds).
TINY_CHANNELS = {4: 32, 8: 32, 16: 16, 32: 16, 64: 8}

# Every FreezeSG feature of a 32 px fine-tune: FreezeS 2, FreezeG 2 (4 and 8 px frozen), FreezeD 1,
# the structure loss at 8 and 16 px, and path length regularisation.
TINY_FREEZESG: dict[str, Any] = dict(
    freeze_style=2,
    freeze_g=2,
    freeze_d=1,
    structure_loss=2,
    path_reg=2.0,
)

# How the tests run training: in this process (no loader workers), on the CPU, silently.
IN_PROCESS: dict[str, Any] = dict(workers=0, device="cpu", quiet=True)
