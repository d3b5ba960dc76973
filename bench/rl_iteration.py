"""Where one RL iteration's time goes, and what overlapping the LLM calls with policy work gains.

`dsp rl` (PPO) runs POLICY (an extractive SFT run, e.g. OUT/sft of bench/extractive_ladder.sh) on
CNN/DM against the loopback latency server (`python -m dsp.llm.testserver`, its own process): every
LLM call takes L seconds and C are in flight. Each iteration logs time/sample (hint generation),
time/logprobs (policy and reference log-probabilities, values), time/llm_wait (waiting on the LLM
after that work) and time/update (forward/backward epochs). With --no-overlap the calls start after
the log-probabilities; with --overlap (the default) they start as soon as the hints exist.

Both modes run in fresh processes, alternating, `--runs` times each; a figure is the median over
all their iterations but the first (warm-up). Each run has a fresh LLM cache, so every call waits.

With --embedded the calls go to the embedded LLM (dsp's default) instead, which shares the machine's cores with
the policy's torch work: there overlapping can cost as much as it hides, so time it on a quiet machine.

Usage: python -m bench.rl_iteration POLICY [--latency 1.0] [--concurrency 16] [--iterations 4] [--runs 3]
       [--batch-size 8] [--samples 4] [--embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.llm_throughput import Server, dsp_llm_flags

KEYS = ("time/sample", "time/logprobs", "time/llm_wait", "time/update")


def one_run(args, url: str, overlap: bool, out: Path) -> list[dict]:
    dsp = Path(sys.executable).parent / "dsp"
    cmd = [
        str(dsp),
        "rl",
        "--data",
        args.data,
        "--policy",
        args.policy,
        "--output-dir",
        str(out),
        "--algo",
        "ppo",
        "--iterations",
        str(args.iterations),
        "--batch-size",
        str(args.batch_size),
        "--samples-per-input",
        str(args.samples),
        "--eval-every",
        str(10**6),
        "--dev-limit",
        "4",
        "--save-every",
        str(10**6),
        "--overlap" if overlap else "--no-overlap",
        "--cache",
        str(out.with_suffix(".sqlite")),
    ]
    if url is not None:  # else dsp's default: the embedded LLM, its own concurrency
        cmd += dsp_llm_flags(url, args.concurrency)
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if p.returncode != 0:
        raise SystemExit(f"dsp rl failed ({p.returncode}):\n{p.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "time/update" in r][1:]  # the first iteration warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("policy")
    ap.add_argument("--data", default="../shared/data/cnndm")
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument(
        "--embedded", action="store_true", help="the embedded LLM (dsp's default) instead of the latency server"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dsp-rl-iter-"))
    server = None if args.embedded else Server(args.latency)
    rows: dict[bool, list[dict]] = {True: [], False: []}
    try:
        for run in range(args.runs):
            for overlap in (False, True):
                out = tmp / f"{'on' if overlap else 'off'}-{run}"
                rows[overlap] += one_run(args, server.url if server else None, overlap, out)
    finally:
        if server:
            server.close()
    calls = args.batch_size * args.samples
    if server:
        limit = f"at L={args.latency} s, C={args.concurrency} (limit {calls * args.latency / args.concurrency:.1f} s)"
    else:
        limit = "on the embedded LLM (its policy work and its LLM share the cores)"
    print(f"PPO, {calls} LLM calls an iteration {limit}; medians over {len(rows[True])} iterations")
    print("| mode | sample s | logprobs s | LLM wait s | update s | iteration s |\n|---|---:|---:|---:|---:|---:|")
    totals = {}
    for overlap, name in ((False, "calls after the policy work"), (True, "calls overlap the log-probabilities")):
        med = {k: statistics.median(r[k] for r in rows[overlap]) for k in KEYS}
        totals[overlap] = statistics.median(sum(r[k] for k in KEYS) for r in rows[overlap])
        print(f"| {name} | " + " | ".join(f"{med[k]:.2f}" for k in KEYS) + f" | {totals[overlap]:.2f} |")
    print(
        f"overlap saves {totals[False] - totals[True]:.2f} s an iteration "
        f"({1 - totals[True] / totals[False]:.0%}); {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
