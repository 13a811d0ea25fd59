"""Multi-GPU / multi-node set-up from the torchrun environment (as nanoGPT does it).

``torchrun --nproc_per_node N -m trainers.cli MODEL ...`` sets RANK, LOCAL_RANK and WORLD_SIZE;
we then join the process group (NCCL on CUDA, gloo otherwise), pin each process to its GPU, and
let only rank 0 log and save. Without those variables everything runs as a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from inpaint_studio.models.device import pick_device as choose_device


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # we joined the process group, so we leave it when training ends

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA > MPS > CPU for 'auto'; an explicit device that is not there is an error."""
    return torch.device(choose_device(preference))


def setup(device_preference: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, 0, pick_device(device_preference))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device, owns_group=owns)


def cleanup(info: DistInfo) -> None:
    """Leave the process group only if :func:`setup` joined it.

    A caller that trains several models in one process (stage 1 then stage 2) creates the group
    once itself: joining a torchrun group a second time after leaving it can hang on stale
    rendezvous keys in the agent's store.
    """
    if info.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
