"""torchrun integration: process-group setup, rank helpers and collective reductions.

Under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1 in the environment) :func:`init_distributed`
joins the process group: NCCL with one GPU per process when CUDA is available, gloo on CPU.
Without torchrun everything degrades to a single process and the reductions are identities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; other values as given."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} was requested but CUDA is not available; use --device cpu")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; returns this process's rank and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks (a copy; identity in a single process)."""
    if not is_initialized():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Average ``t`` over ranks (a copy; identity in a single process)."""
    if not is_initialized():
        return t
    return reduce_sum(t) / dist.get_world_size()


def all_gather_object(obj):
    """A list with every rank's ``obj`` (``[obj]`` in a single process)."""
    if not is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def ddp_wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel without per-forward buffer broadcasts (buffers here are constants)."""
    import inspect
    import warnings

    from torch.nn.parallel import DistributedDataParallel as DDP

    kwargs = {"device_ids": [device] if device.type == "cuda" else None}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    # A [1, C] linear weight gets a gradient with strides (1, 1): harmless, but DDP warns every step.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DDP(module, **kwargs)


def barrier() -> None:
    if is_initialized():
        dist.barrier()
