"""Parameters and greedy hints per second of hint policies (run folders), on the same inputs.

Usage: python -m bench.policy_size_speed RUN [RUN ...] [--data ../shared/data/cnndm] [--n 100] [--runs 5]
       [--batch-size 16]
Each policy writes hints for the first N dev inputs, `--runs` times after one warm-up pass; the
figure is N over the median wall time. Torch uses every core it is given (2 here).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dsp.data import load_examples
from dsp.policy import load_policy


def count_parameters(policy) -> int:
    modules = [
        m
        for m in (getattr(policy, "encoder", None), getattr(policy, "head", None), getattr(policy, "model", None))
        if isinstance(m, torch.nn.Module)
    ]
    return sum(p.numel() for m in modules for p in m.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_", nargs="+", metavar="RUN")
    ap.add_argument("--data", default="../shared/data/cnndm")
    ap.add_argument("--input-field", default="article")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    inputs = [
        e.input
        for e in load_examples(
            args.data,
            split="dev",
            limit=args.n,
            input_field=args.input_field,
            target_field="highlights",
            need_target=False,
        )
    ]
    print(f"| policy | parameters | hints/s (median of {args.runs}, {len(inputs)} inputs, batch {args.batch_size}) |")
    print("|---|---:|---:|")
    for run in args.runs_:
        policy = load_policy(run)
        policy.generate(inputs[: args.batch_size], batch_size=args.batch_size)  # warm-up
        walls = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            policy.generate(inputs, batch_size=args.batch_size)
            walls.append(time.perf_counter() - t0)
        print(f"| {run} | {count_parameters(policy) / 1e6:.2f}M | {len(inputs) / statistics.median(walls):.1f} |")


if __name__ == "__main__":
    main()
