"""Training checkpoints in rosinality's layout, written atomically, the last N kept.

A checkpoint ``OUT/checkpoints/{iter:06d}.pt`` is a plain dict::

    g, d, g_ema          state dicts (rosinality names; ``g_ema`` is what load_generator reads)
    g_optim, d_optim     Adam state dicts
    args                 the run configuration as a plain dict
    ada_aug_p            augmentation probability (float)
    iter                 completed iterations (int)
    latent_avg           the source's mean w [style_dim] (for truncation and blending)
    ada, mean_path_length, rng, world_size, format    exact-resume state (tensors and plain types)
    source_sha256        which source model the run started from
    replica_digests      SHA-256 of (g, d, g_ema) on every rank (all equal, checked before saving)

Everything loads with ``torch.load(weights_only=True)``. Files are serialised in memory, written to
a temporary name in the same folder and renamed (:func:`cptr.io.atomic_path`), so a crash leaves
either the previous set of checkpoints or the new one, never a half file under a checkpoint name.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cptr.io import atomic_path
from cptr.models.checkpoints import CheckpointError, load_torch_file

FORMAT = "cptr-finetune-1"
CHECKPOINT_RE = re.compile(r"^(\d{6,})\.pt$")
# Test hook: "ITER:SECONDS" pauses halfway through writing checkpoint ITER (fault-injection tests).
SAVE_PAUSE_ENV = "CPTR_TRAIN_TEST_SAVE_PAUSE"
REQUIRED_KEYS = ("g", "d", "g_ema", "g_optim", "d_optim", "args", "iter")


def checkpoint_dir(out: str | os.PathLike) -> Path:
    return Path(out) / "checkpoints"


def checkpoint_path(out: str | os.PathLike, step: int) -> Path:
    return checkpoint_dir(out) / f"{step:06d}.pt"


def to_cpu(obj: Any) -> Any:
    """Detached CPU copies of every tensor in a nested dict/list structure."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def _pause_for(step: int) -> float:
    spec = os.environ.get(SAVE_PAUSE_ENV, "")
    if not spec:
        return 0.0
    at, _, seconds = spec.partition(":")
    return float(seconds or 60) if int(at) == step else 0.0


def save_checkpoint(state: dict[str, Any], out: str | os.PathLike, keep: int | None = None) -> Path:
    """Write ``state`` as ``OUT/checkpoints/{state['iter']:06d}.pt`` atomically; keep the newest ``keep``."""
    step = int(state["iter"])
    path = checkpoint_path(out, step)
    buf = io.BytesIO()
    torch.save(to_cpu(state), buf)
    data = buf.getbuffer()
    pause = _pause_for(step)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            if pause:
                half = len(data) // 2
                f.write(data[:half])
                f.flush()
                os.fsync(f.fileno())
                print(f"[test hook] pausing {pause:g}s while writing {tmp}", file=sys.stderr, flush=True)
                time.sleep(pause)
                f.write(data[half:])
            else:
                f.write(data)
    if keep is not None and keep > 0:
        for old in list_checkpoints(out)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(out: str | os.PathLike) -> list[Path]:
    """Checkpoint files of a run, oldest first (temporary files are ignored)."""
    d = checkpoint_dir(out)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def remove_stale_temp_files(out: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by a run that was killed while saving; returns them."""
    d = checkpoint_dir(out)
    stale = [p for p in d.glob(".*.tmp")] if d.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a training checkpoint (``weights_only=True``); raises :class:`CheckpointError`."""
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(path, f"expected a dict, found {type(ckpt).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"not a training checkpoint (missing {', '.join(missing)}); to fine-tune from it pass it as --source")
    return ckpt


def latest_checkpoint(out: str | os.PathLike, warn=print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of a run that loads; broken ones are reported through ``warn`` and skipped."""
    for path in reversed(list_checkpoints(out)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as e:
            warn(f"skipping unreadable checkpoint: {e}")
    return None
