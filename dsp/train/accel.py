"""Data parallelism on Hugging Face accelerate: one Accelerator per run, shared by every trainer.

Launch with `accelerate launch [--config_file F] $(which dsp) rl ...` (or torchrun, which sets the same
RANK / WORLD_SIZE / MASTER_ADDR variables). With one process and no launcher nothing here is visible:
the device is the one `--device` names, collectives return their input, and the run folder is as before.

What accelerate does here: the process group and its backend, device placement (rank r on GPU
LOCAL_RANK), mixed precision (autocast, and fp16's loss scaling through the prepared optimizer),
the collectives (reduce, broadcast, gather_object), and which process is the main one.

What it does not do, on purpose: wrap the policy in DistributedDataParallel. DDP synchronises
gradients from hooks that only its own forward() arms, and a hint policy is not trained through
one forward: RL calls `action_logprobs` on the policy and the value head, SFT calls `loss`,
distillation adds the teacher's KL, and a prepared module called any other way would silently
train each process on its own gradients. So the trainers average the gradients themselves, in one
flattened `accelerator.reduce` per step (what DDP's all-reduce does, without its buckets). The
same reason rules out FSDP and DeepSpeed (they shard the model behind its forward), which a hint
policy of some hundred million parameters at most does not need: such configs are refused.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Sequence

import torch

from dsp.errors import DSPError
from dsp.settings import check_choice
from dsp.train.configs import MixedPrecision


def use_cpu(device: str) -> bool:
    """Whether the run is CPU-only. accelerate must be told: launched without a GPU and without
    `cpu=True`, it would leave each process training alone instead of joining the group."""
    flag = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return flag or device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def process_state(device: str):
    """accelerate's PartialState (rank, world size; joins the process group when launched with
    several processes), for code that runs before a trainer makes its Accelerator."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu(device))


def make_accelerator(device: str, mixed_precision: str | None):
    """The run's Accelerator. `mixed_precision` None takes the launcher's (`accelerate launch
    --mixed_precision`, or its config file), "no" without one."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState
    from accelerate.utils import DistributedType

    if mixed_precision is not None:
        check_choice("--mixed-precision", mixed_precision, MixedPrecision)
    if PartialState._shared_state and PartialState._shared_state.get("distributed_type") == DistributedType.NO:
        # One process that runs several commands (tests, a notebook): each run sets its own precision
        # and device, which accelerate's process-wide state would otherwise refuse to change.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    try:
        acc = Accelerator(cpu=use_cpu(device), mixed_precision=mixed_precision)
    except ValueError as e:
        raise DSPError(f"--mixed-precision {mixed_precision}: {str(e).splitlines()[0]}") from None
    if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
        raise DSPError(
            f"accelerate config uses {acc.distributed_type.value}, which shards a model behind its forward; "
            "dsp trains hint policies data-parallel only: choose multi-GPU or multi-CPU in `accelerate config`"
        )
    if acc.mixed_precision == "fp16" and acc.device.type == "cpu":
        # accelerate accepts it on a CPU and then does nothing (no autocast, no loss scaling)
        raise DSPError("--mixed-precision fp16 needs a GPU (on a CPU accelerate would ignore it); use bf16 or no")
    return acc


def run_device(acc, device: str) -> str:
    """The device the policy goes on: `--device` as given with one process, rank r's own with several."""
    from dsp.policy.choose import resolve_device

    return resolve_device(device) if acc.num_processes == 1 else str(acc.device)


def autocast(acc):
    """accelerate's mixed-precision context (a no-op without --mixed-precision). Autocast is per
    thread: enter it where the tensors are computed."""
    return acc.autocast() if acc is not None else contextlib.nullcontext()


# -- the global LLM budget -------------------------------------------------------------------
def call_share(cap: int | None, rank: int, world: int) -> int | None:
    """This process's share of a job-wide call cap: cap // world, one more for the lowest cap % world ranks."""
    if cap is None:
        return None
    return cap // world + (1 if rank < cap % world else 0)


def share_budget(llm, device: str):
    """`llm` (an LLMConfig) with this process's share of --max-llm-calls and --max-cost.

    Each input of a batch is rolled out by exactly one process, so the shares are spent evenly;
    the first process to reach its share stops every process (the trainers vote), and the job's
    requests and spend stay within the caps given."""
    from dataclasses import replace

    state = process_state(device)
    world, rank = state.num_processes, state.process_index
    if world == 1:
        return llm
    cost = llm.max_cost / world if llm.max_cost is not None else None
    return replace(llm, max_llm_calls=call_share(llm.max_llm_calls, rank, world), max_cost=cost)


# -- collectives: each returns its input unchanged with one process ---------------------------
# `acc` is an Accelerator or a PartialState (or None: one process).
def mean(acc, value: float) -> float:
    """The mean of a number over processes (so every process takes the same stop decision)."""
    from accelerate.utils import reduce

    if acc is None or acc.num_processes == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=acc.device)  # (1,)
    return float(reduce(t, reduction="mean"))


def any_process(acc, flag: bool) -> bool:
    """Whether `flag` holds on any process: the vote by which every process takes the same stop decision."""
    return mean(acc, float(flag)) > 0


def sum_tensor(acc, t: torch.Tensor) -> torch.Tensor:
    """A tensor's elementwise sum over processes (every process gets it)."""
    from accelerate.utils import reduce

    if acc is None or acc.num_processes == 1:
        return t
    return reduce(t.to(acc.device), reduction="sum").to(t.device)


def mean_of(acc, values: dict[str, float]) -> dict[str, float]:
    """Each number's mean over processes, in one all-reduce (the same keys on every process)."""
    from accelerate.utils import reduce

    if acc is None or acc.num_processes == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=acc.device)  # (K,)
    return dict(zip(values, reduce(t, reduction="mean").tolist()))


def gather(acc, values: list) -> list:
    """Every process's list, concatenated in rank order."""
    from accelerate.utils import gather_object

    if acc is None or acc.num_processes == 1:
        return values
    return gather_object(list(values))


def broadcast_parameters(acc, params: Sequence[torch.nn.Parameter]) -> None:
    """Start every process from the main one's weights (a fresh value head is random on each)."""
    from accelerate.utils import broadcast

    if acc is not None and acc.num_processes > 1:
        with torch.no_grad():
            broadcast([p.data for p in params], from_process=0)


def average_gradients(acc, params: Sequence[torch.nn.Parameter]) -> None:
    """The mean gradient over processes, in one all-reduce (see the module docstring for why not DDP).

    A parameter with no gradient on any process (unused, like an encoder's pooler) keeps none, so
    AdamW skips it as it would in one process; one used on some processes only gets their sum / world.
    """
    from accelerate.utils import reduce

    if acc is None or acc.num_processes == 1:
        return
    params = [p for p in params if p.requires_grad]
    parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params]
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=acc.device)  # (P,)
    flat = torch.cat(parts + [present.to(parts[0].device)]) if parts else present  # (sum of numels + P,)
    flat = reduce(flat, reduction="mean")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).clone()
        offset += n
    used = flat[offset:] > 0  # (P,)
    for p, u in zip(params, used.tolist()):
        if not u:
            p.grad = None


# -- random states per process (for a resume that reproduces the uninterrupted run) -------------
def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def gather_rng_states(acc) -> list[dict[str, Any]] | None:
    """Every process's random state (collective), for the checkpoint; None with one process."""
    if acc is None or acc.num_processes == 1:
        return None
    return gather(acc, [rng_state()])
