"""`dsp eval` wall time against the latency limit N x L / C, and how it grows with N.

The LLM is the loopback test server (`python -m dsp.llm.testserver`, its own process) answering
after a fixed latency L with no concurrency limit of its own; the data is synthetic articles written
to a temporary folder. Every run is the real command in a new process, `--conditions none`, so N
examples are N calls. Two walls are reported: the process's (start-up, imports and data loading
included) and the run's own (`seconds` in summary.json: loading the data to writing the report).

- overhead: N=200, L=1 s, C=8 (an API-like latency at the default concurrency): wall / limit.
- growth:   N=100, 1,000, 10,000 at L=0.05 s, C=64, uncached and then cached (the same command again
            on the first run's cache): time per example should not rise with N or the cache's size.

Usage: python -m bench.eval_scaling [--runs 5] [--growth 100 1000 10000] [--skip-overhead] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.llm_throughput import FILLER, Server, dsp_llm_flags

ROOT = Path(__file__).resolve().parents[1]


def write_data(path: Path, n: int, words: int = 300) -> None:
    body = " ".join((FILLER * (words // len(FILLER) + 1))[:words])
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": str(i),
                        "article": f"{body} story {i}.",
                        "highlights": f"The bridge opens next spring. Story {i}.",
                    }
                )
                + "\n"
            )


def eval_once(url: str, data: Path, out: Path, cache: Path, concurrency: int) -> dict:
    dsp = Path(sys.executable).parent / "dsp"
    cmd = [
        str(dsp),
        "eval",
        "--data",
        str(data),
        "--output-dir",
        str(out),
        "--conditions",
        "none",
        "--shots",
        "0",
        "--cache",
        str(cache),
        *dsp_llm_flags(url, concurrency),
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"dsp eval failed ({p.returncode}):\n{p.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "process": wall,
        "run": summary["seconds"],
        "sent": summary["llm"]["requests"],
        "hits": summary["llm"]["cache_hits"],
    }


def overhead(tmp: Path, runs: int, n: int = 200, latency: float = 1.0, concurrency: int = 8) -> dict:
    server = Server(latency)
    try:
        data = tmp / f"data-{n}.jsonl"
        write_data(data, n)
        results = [
            eval_once(server.url, data, tmp / f"ov-{i}", tmp / f"ov-{i}.sqlite", concurrency) for i in range(runs)
        ]
    finally:
        server.close()
    limit = n * latency / concurrency
    proc = statistics.median(r["process"] for r in results)
    run = statistics.median(r["run"] for r in results)
    return {
        "n": n,
        "latency": latency,
        "concurrency": concurrency,
        "limit_s": limit,
        "process_s": proc,
        "run_s": run,
        "process_over_limit": proc / limit,
        "run_over_limit": run / limit,
        "runs": results,
    }


def growth(tmp: Path, runs: int, sizes: list[int], latency: float = 0.05, concurrency: int = 64) -> list[dict]:
    server = Server(latency)
    rows = []
    try:
        for n in sizes:
            data = tmp / f"data-{n}.jsonl"
            write_data(data, n)
            uncached, cached = [], []
            for i in range(runs):
                cache = tmp / f"g-{n}-{i}.sqlite"
                uncached.append(eval_once(server.url, data, tmp / f"g-{n}-{i}", cache, concurrency))
                cached.append(eval_once(server.url, data, tmp / f"g-{n}-{i}-again", cache, concurrency))
                assert cached[-1]["sent"] == 0 and cached[-1]["hits"] == n, cached[-1]
            row = {"n": n, "latency": latency, "concurrency": concurrency, "limit_s": n * latency / concurrency}
            for name, rs in (("uncached", uncached), ("cached", cached)):
                row[f"{name}_process_s"] = statistics.median(r["process"] for r in rs)
                row[f"{name}_run_s"] = statistics.median(r["run"] for r in rs)
                row[f"{name}_ms_per_example"] = 1000 * row[f"{name}_run_s"] / n
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        server.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--growth", type=int, nargs="*", default=[100, 1000, 10_000])
    ap.add_argument("--growth-runs", type=int, default=3)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dsp-eval-scaling-"))
    out: dict = {"cores": os.cpu_count()}
    if not args.skip_overhead:
        o = out["overhead"] = overhead(tmp, args.runs)
        print(
            f"overhead: N={o['n']} L={o['latency']} s C={o['concurrency']}: limit {o['limit_s']:.1f} s, "
            f"process {o['process_s']:.1f} s ({o['process_over_limit']:.2f}x), run {o['run_s']:.1f} s "
            f"({o['run_over_limit']:.2f}x); median of {args.runs}"
        )
    if args.growth:
        out["growth"] = growth(tmp, args.growth_runs, args.growth)
        print(
            "| N | limit s | uncached run s | ms/example | cached run s | ms/example | uncached process s | cached process s |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in out["growth"]:
            print(
                f"| {r['n']} | {r['limit_s']:.2f} | {r['uncached_run_s']:.2f} | {r['uncached_ms_per_example']:.2f} | "
                f"{r['cached_run_s']:.2f} | {r['cached_ms_per_example']:.2f} | {r['uncached_process_s']:.2f} | "
                f"{r['cached_process_s']:.2f} |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
