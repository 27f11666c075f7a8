"""Reproducible randomness for training.

Every random draw of a training step comes from a stream keyed by ``(seed, step, name)``
(:class:`StepRandom`), never from global RNG state. Draws cover the *global* batch (all ranks), and
each rank keeps its own rows, so a run is a function of the seed and the global batch only: resuming
from a checkpoint, or splitting the batch over processes, replays the same numbers. The global
torch/numpy/python RNG states are still saved in checkpoints and restored on resume
(:func:`capture_rng_state`, :func:`restore_rng_state`) for any code that uses them.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def stream_seed(*key: object) -> int:
    """A 63-bit seed derived from ``key`` (stable across processes and Python versions)."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class StepRandom:
    """Named random streams for one training step on ``device`` (CUDA draws use a CUDA generator)."""

    def __init__(self, seed: int, step: int, device: torch.device | str = "cpu"):
        self.seed, self.step = int(seed), int(step)
        self.device = torch.device(device)

    def generator(self, name: str, cpu: bool = False) -> torch.Generator:
        """The generator of stream ``name`` (on this step's device unless ``cpu``)."""
        dev = "cpu" if cpu or self.device.type != "cuda" else self.device
        gen = torch.Generator(device=dev)
        gen.manual_seed(stream_seed(self.seed, self.step, name))
        return gen

    def randn(self, name: str, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator(name), device=self._dev())

    def rand(self, name: str, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator(name), device=self._dev())

    def randint(self, name: str, low: int, high: int) -> int:
        """One integer in [low, high)."""
        return int(torch.randint(low, high, (1,), generator=self.generator(name, cpu=True)).item())

    def uniform(self, name: str) -> float:
        return float(torch.rand(1, generator=self.generator(name, cpu=True)).item())

    def _dev(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain types (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": list(state), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (missing parts are left alone)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state((s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"]))
    if "python" in state:
        s = state["python"]
        random.setstate((s["version"], tuple(s["state"]), s["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
