"""`dsp serve` against the upstream alone, side by side: what the server adds to a request, and what
micro-batching does for the policy's throughput.

    python -m bench.serve --latency 0.05 --requests 24 --burst 48 --rounds 2            # 400-word articles
    python -m bench.serve --latency 0.05 --requests 24 --burst 48 --rounds 2 --words 60

One run: the test server in its own process with a fixed latency (the upstream), and `dsp serve`
(as the CLI runs it, its own process) twice in front of it: micro-batching on (the defaults) and
--max-batch 1, both up at once and measured alternately, `--rounds` times. For each, the same CNN/DM
dev articles (cut to `--words`):

- concurrency 1: each article straight to the upstream, then through dsp serve, alternating, and
  added latency = the pair's difference; concurrency 16: all articles straight, then all through
  dsp serve, and added latency = served latency - the upstream alone's median; hint time = the server's own `dsp.hint_ms` (batch wait + forward pass); the
  server's overhead = added latency - hint time (HTTP, JSON, prompt, the LLM client and its cache).
- hints a second at concurrency 16: `--burst` requests through dsp serve, all different, over the
  wall time; the burst's mean batch size from /metrics.

Every request is new to the server's cache (a fresh cache file a server, the phase in the text),
so each one is a real upstream call. The policy is the offline default's architecture (MiniLM-L6
extractive) untrained, unless --policy names a trained one: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]


def articles(n: int, words: int) -> list[str]:
    dev = ROOT.parent / "shared" / "data" / "cnndm" / "dev.jsonl"
    if dev.exists():
        rows = [json.loads(line)["article"] for line in dev.read_text().splitlines() if line.strip()]
    else:  # the synthetic articles of the tests: shorter, so the hint is faster than on real news
        from tests.conftest import synthetic_rows

        rows = [r["article"] for r in synthetic_rows(n)]
    return [" ".join(rows[i % len(rows)].split()[:words]) for i in range(n)]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def start_dsp_serve(policy: str, upstream: str, cache: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dsp"),
            "serve",
            "--policy",
            policy,
            "--base-url",
            upstream,
            "--model",
            "test-model",
            "--port",
            "0",
            "--cache",
            str(cache),
            "--device",
            "cpu",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    for line in proc.stderr:
        if m := re.search(r"at (http://\S+/v1)", line):
            return proc, m.group(1)
    raise SystemExit(f"dsp serve did not start: {proc.wait()}")


async def timed(client: openai.AsyncOpenAI, prompt: str) -> tuple[float, float | None]:
    t0 = time.perf_counter()
    r = await client.completions.create(model="test-model", prompt=prompt, max_tokens=32)
    hint_ms = (r.model_extra or {}).get("dsp", {}).get("hint_ms")
    return (time.perf_counter() - t0) * 1000, hint_ms


async def at_concurrency(client, prompts, concurrency):
    sem = asyncio.Semaphore(concurrency)

    async def one(p):
        async with sem:
            return await timed(client, p)

    return await asyncio.gather(*(one(p) for p in prompts))


def batch_counts(serve_url: str) -> tuple[float, float]:
    """(inputs, forward passes) so far, from /metrics."""
    metrics = urllib.request.urlopen(serve_url.removesuffix("/v1") + "/metrics").read().decode()
    return tuple(float(re.search(rf"dsp_hint_batch_size_{k} (\S+)", metrics).group(1)) for k in ("sum", "count"))


def merge(rounds: list[dict]) -> dict:
    """Percentiles over every round's requests; hints a second and batch size: the median round."""
    out: dict = {}
    for c in ("c1", "c16"):
        values = {k: [v for r in rounds for v in r[c][k]] for k in ("direct", "added", "hint", "overhead")}
        out[c] = {f"{k}_p{q}": pct(v, q) for k, v in values.items() for q in (50, 99)}
    out["hints_per_s"] = statistics.median(r["hints_per_s"] for r in rounds)
    out["hints_per_s_rounds"] = [round(r["hints_per_s"], 2) for r in rounds]
    out["mean_batch"] = statistics.median(r["mean_batch"] for r in rounds)
    return out


async def measure(serve_url: str, upstream: str, texts: list[str], burst: list[str], tag: str) -> dict:
    served = openai.AsyncOpenAI(base_url=serve_url, api_key="x", max_retries=0, timeout=120)
    direct = openai.AsyncOpenAI(base_url=upstream, api_key="x", max_retries=0, timeout=120)
    out = {}
    for conc in (1, 16):
        prompts = [f"{t} ({tag} c{conc} #{i})" for i, t in enumerate(texts)]
        await at_concurrency(served, prompts[:4], conc)  # warm-up (first forward pass, connections)
        prompts = prompts[4:]
        if conc == 1:
            pairs = []
            for p in prompts:
                d, _ = await timed(direct, p)
                s, h = await timed(served, p)
                pairs.append((d, s, h))
            added = [s - d for d, s, _ in pairs]
        else:  # the two phases run apart, so each served request is set against the upstream's median
            ds = await at_concurrency(direct, prompts, conc)
            ss = await at_concurrency(served, prompts, conc)
            pairs = [(d, s, h) for (d, _), (s, h) in zip(ds, ss)]
            median = pct([d for d, _, _ in pairs], 50)
            added = [s - median for _, s, _ in pairs]
        hint = [h for _, _, h in pairs]
        overhead = [a - h for a, h in zip(added, hint)]
        out[f"c{conc}"] = {"direct": [d for d, _, _ in pairs], "added": added, "hint": hint, "overhead": overhead}
    before = batch_counts(serve_url)
    t0 = time.perf_counter()
    await at_concurrency(served, [f"{t} ({tag} burst #{i})" for i, t in enumerate(burst)], 16)
    out["hints_per_s"] = len(burst) / (time.perf_counter() - t0)
    after = batch_counts(serve_url)
    out["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
    await served.close()
    await direct.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05, help="the upstream's fixed latency, seconds")
    ap.add_argument("--requests", type=int, default=60, help="requests per concurrency level (4 more warm up)")
    ap.add_argument("--burst", type=int, default=96, help="requests for hints a second at concurrency 16")
    ap.add_argument("--policy", help="a trained policy folder (default: untrained MiniLM-L6 extractive)")
    ap.add_argument("--words", type=int, default=400, help="article words kept (400: what the task's prompt keeps)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; each measures both servers, one after the other")
    args = ap.parse_args()
    load_before = f"{os.getloadavg()[0]:.1f}"  # other work on the machine slows the policy most
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    policy = args.policy
    if policy is None:
        from dsp.policy.extractive import ExtractivePolicy

        policy = str(tmp / "policy")
        ExtractivePolicy.from_encoder().save(policy)
    texts, burst = articles(args.requests + 4, args.words), articles(args.burst, args.words)
    up = subprocess.Popen(
        [sys.executable, "-m", "dsp.llm.testserver", "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True
    )
    upstream = up.stdout.readline().strip()
    configs = {
        "micro-batching (--max-batch 32, --batch-wait-ms 2)": (),
        "batch size 1 (--max-batch 1)": ("--max-batch", "1"),
    }
    servers = []
    rounds: dict[str, list[dict]] = {name: [] for name in configs}
    try:
        # Both servers up at once, measured alternately round after round: load from elsewhere on the
        # machine then falls on both alike.
        for i, extra in enumerate(configs.values()):
            servers.append(start_dsp_serve(policy, upstream, tmp / f"cache-{i}.sqlite", *extra))
        for r in range(args.rounds):
            for (name, _), (_, url) in zip(configs.items(), servers):
                rounds[name].append(asyncio.run(measure(url, upstream, texts, burst, f"round{r}")))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()
        up.kill()
        up.wait()
    results = {name: merge(rs) for name, rs in rounds.items()}
    print(json.dumps(results))
    print(
        f"\nupstream latency {args.latency * 1000:g} ms; {args.words}-word articles; {args.rounds} rounds of "
        f"{args.requests} requests a level and a burst of {args.burst}; "
        f"{os.cpu_count()} CPUs; load average before {load_before}, after {os.getloadavg()[0]:.1f}\n"
    )
    print("| server | concurrency | upstream alone p50 | added p50 / p99 | hint p50 / p99 | overhead p50 / p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        for c in ("c1", "c16"):
            x = r[c]
            print(
                f"| {name} | {c[1:]} | {x['direct_p50']:.1f} ms | {x['added_p50']:.1f} / {x['added_p99']:.1f} ms "
                f"| {x['hint_p50']:.1f} / {x['hint_p99']:.1f} ms | {x['overhead_p50']:.1f} / {x['overhead_p99']:.1f} ms |"
            )
    print("\n| server | hints/s at concurrency 16 | mean batch |")
    print("|---|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['hints_per_s']:.1f} (rounds: {r['hints_per_s_rounds']}) | {r['mean_batch']:.1f} |")
    names = list(results)
    print(
        f"\nmicro-batching: {results[names[0]]['hints_per_s'] / results[names[1]]['hints_per_s']:.2f}x the hints a second"
    )


if __name__ == "__main__":
    main()
