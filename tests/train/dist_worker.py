"""One rank of the two-process RL test (run by test_rl.py with torch's launcher variables set)."""

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from dsp.policy.extractive import content_words
from dsp.train.rl import RLConfig, run_rl
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


def main(data: str, policy: str, out: str, record: str) -> None:
    import torch.distributed as dist

    reward, weights = RecordingReward(), []
    cfg = RLConfig(data=data, output_dir=out, policy=policy, iterations=2, batch_size=4, samples_per_input=2,
                   minibatch_size=4, lr=3e-3, save_every=1, dev_limit=2, algo="ppo",
                   device=os.environ.get("DSP_WORKER_DEVICE", "cpu"))
    weights.append(digest(__import__("dsp.policy", fromlist=["load_policy"]).load_policy(policy)))
    asyncio.run(run_rl(cfg, reward, on_iteration=lambda it, p: weights.append(digest(p))))
    rank = dist.get_rank()
    Path(record, f"rank{rank}.json").write_text(json.dumps({"ids": reward.ids, "weights": weights}))
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*sys.argv[1:5])
