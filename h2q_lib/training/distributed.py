"""One process or ``torchrun``: which process this is (``DistInfo``) and how the processes meet.

When ``WORLD_SIZE`` > 1 the processes join one process group (gloo on CPU, NCCL on CUDA);
rank 0 logs, evaluates and checkpoints, and every rank takes its share of a step's sequences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if device == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info
