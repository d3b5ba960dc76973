"""One process of a data-parallel trainer test: `torchrun --nproc_per_node 2 -m tests.train.dist_worker TRAINER ...`,
or called in-process (`main`) for the one-process run it is compared with.

Each process writes record/rank{R}.json: the digest of its weights before training and after every step
(RL also: the ids of the inputs it rolled out). TRAINER is rl, sft or distill; the settings are fixed
here so that the test compares the same global batch in both runs.
"""

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from dsp.policy.extractive import content_words
from tests.train.test_rl import TARGET


class RecordingReward:
    def __init__(self):
        self.ids, self.missing = [], 0

    async def __call__(self, examples, hints):
        self.ids += [e.id for e in examples]
        return [len(content_words(h) & TARGET) / max(1, len(content_words(h))) for h in hints]

    async def metric(self, examples, hints):
        return [0.0 for _ in hints]


def digest(policy) -> str:
    h = hashlib.sha256()
    for p in policy.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def rank() -> int:
    from accelerate import PartialState

    return PartialState(cpu=True).process_index


def run_rl(data: str, start: str, out: str, world: int, record: dict) -> None:
    from dsp.policy import load_policy
    from dsp.train.configs import RLConfig
    from dsp.train.rl import run_rl

    reward = RecordingReward()
    # the global batch: 4 inputs x 2 samples, one gradient step over all 8 rollouts per epoch.
    # DSP_WORKER_RL="algo iterations lr_schedule resume" varies the run (default: grpo 2 linear 0)
    algo, iterations, schedule, resume = os.environ.get("DSP_WORKER_RL", "grpo 2 linear 0").split()
    cfg = RLConfig(
        data=data,
        output_dir=out,
        policy=start,
        iterations=int(iterations),
        batch_size=4,
        samples_per_input=2,
        minibatch_size=8 // world,
        lr=3e-3,
        lr_schedule=schedule,
        save_every=1,
        dev_limit=2,
        algo=algo,
        target_kl=None,
        resume=resume == "1",
        device=os.environ.get("DSP_WORKER_DEVICE", "cpu"),
    )
    record["weights"].append(digest(load_policy(start)))
    asyncio.run(run_rl(cfg, reward, on_iteration=lambda it, p: record["weights"].append(digest(p))))
    record["ids"] = reward.ids


def run_sft(data: str, start: str, out: str, world: int, record: dict) -> None:
    from dsp.train.configs import SFTConfig
    from dsp.train.sft import run_sft

    # 5 steps of 4 examples over 11 training inputs: the third has 3, split 2 / 1 over two processes
    cfg = SFTConfig(
        data=data,
        output_dir=out,
        policy=start,
        policy_type="extractive",
        hint_words=3,
        limit=11,
        max_steps=5,
        batch_size=4,
        lr=3e-3,
        eval_every=5,
        save_every=2,
        dev_limit=2,
        max_input_tokens=64,
        device="cpu",
    )
    run_sft(cfg, on_step=lambda step, p: record["weights"].append(digest(p)))


def run_distill(data: str, start: str, out: str, world: int, record: dict) -> None:
    from dsp.train.configs import DistillConfig
    from dsp.train.distill import run_distill

    cfg = DistillConfig(
        teacher=start,
        data=data,
        output_dir=out,
        student="layers:1",
        limit=10,
        max_steps=4,
        batch_size=4,
        lr=3e-3,
        eval_every=4,
        save_every=2,
        dev_limit=2,
        device="cpu",
    )
    run_distill(cfg, on_step=lambda step, p: record["weights"].append(digest(p)))


def main(trainer: str, data: str, start: str, out: str, record_dir: str, world: int = 1) -> None:
    record: dict = {"weights": []}
    {"rl": run_rl, "sft": run_sft, "distill": run_distill}[trainer](data, start, out, world, record)
    Path(record_dir, f"rank{rank()}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*sys.argv[1:6], world=int(os.environ["WORLD_SIZE"]))
