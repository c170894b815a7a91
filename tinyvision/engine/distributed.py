"""DDP set-up from torchrun's environment: gloo on CPU, nccl on CUDA; rank 0 writes."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks (in place; returned for chaining)."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def any(self, flag: bool, device) -> bool:
        if not self.enabled:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item() > 0)


def init_distributed(device_type: str) -> Dist:
    """Join the process group torchrun describes in the environment; a lone process gets Dist()."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return d


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
