"""Data-parallel RL over processes: each rank rolls out its share of every batch, gradients are averaged.

Launch with `torchrun --nproc_per_node N $(which dsp) rl ...` or `accelerate launch`: both set
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, which is all this reads. Processes talk over
gloo; with one process (no WORLD_SIZE) every function here is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup(device: str = "cpu") -> tuple[int, int]:
    """(rank, world size); joins the process group when launched with more than one process.

    Always gloo: it reduces CPU and CUDA tensors alike, and a hint policy's gradients are
    small next to the LLM calls an iteration waits for, so NCCL's speed would buy nothing.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_parameters(params) -> None:
    """Start every rank from rank 0's weights (a value head is initialised at random on each)."""
    if active():
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(params) -> None:
    if active():
        world = dist.get_world_size()
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= world


def mean(value: float) -> float:
    """The mean of a number over ranks (so every rank takes the same early-stop decision)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / dist.get_world_size()


def gather_floats(values: list[float]) -> list[float]:
    """Every rank's values, concatenated in rank order."""
    if not active():
        return values
    out: list[list[float]] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


def cleanup() -> None:
    if active():
        dist.destroy_process_group()
