"""What the trainers add to the image data sets of :mod:`cptr.data.datasets`: a deterministic sampler and flips.

* :class:`StepBatchSampler`: batch ``s`` is positions ``[s*B, (s+1)*B)`` of an endless stream of
  seeded per-epoch permutations (B = global batch); rank ``r`` of ``W`` keeps every W-th sample from
  ``r``. The order depends only on (seed, global batch), so resuming and re-sharding replay it.
* :func:`hflip`: horizontal flips per sample, from the step's random stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from cptr.data.datasets import (  # noqa: F401 - the trainers' data API in one place
    IMAGE_SUFFIXES,
    LMDB_MAP_SIZE,
    DatasetError,
    ImageFolderDataset,
    LMDBDataset,
    _lmdb,
    is_lmdb,
    list_image_files,
    lmdb_key,
    open_dataset,
    resize_center_crop,
    to_tensor,
    write_lmdb,
)
from cptr.training.rng import stream_seed


def hflip(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images [B, 3, H, W] where ``flip`` [B] (bool) is set."""
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


class StepBatchSampler(Sampler[list[int]]):
    """This rank's dataset indices for steps ``start, start+1, ...`` (see the module docstring)."""

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0, stop: int | None = None):
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} does not split over {world_size} processes")
        self.n, self.global_batch, self.seed = int(n), int(global_batch), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.start, self.stop = int(start), stop
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {
                epoch: torch.randperm(self.n, generator=torch.Generator().manual_seed(stream_seed(self.seed, epoch, "data-order")))
            }
        return self._perms[epoch]

    def global_indices(self, step: int) -> list[int]:
        out = []
        for pos in range(step * self.global_batch, (step + 1) * self.global_batch):
            epoch, offset = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[offset]))
        return out

    def indices(self, step: int) -> list[int]:
        return self.global_indices(step)[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while self.stop is None or step < self.stop:
            yield self.indices(step)
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless sampler has no length")
        return max(0, self.stop - self.start)
