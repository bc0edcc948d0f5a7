"""torchrun / DDP helpers: one process per device, NCCL on GPU, gloo on CPU.

``torchrun --nproc_per_node N -m fasdistill.cli train ...`` sets RANK,
WORLD_SIZE and LOCAL_RANK; without them everything runs in one process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(prefer_cuda: bool = True) -> DistInfo:
    """Initialise the process group when launched by torchrun; choose the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = prefer_cuda and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        # Rank 0 alone scores dev while the others wait in a collective: allow an hour.
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=60)
        )
    return DistInfo(rank, world_size, local_rank, device)


def teardown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(info: DistInfo, value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (a copy on one process)."""
    out = value.clone()
    if info.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast_object(info: DistInfo, obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
