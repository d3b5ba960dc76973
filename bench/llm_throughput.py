"""LLM-call throughput of the `dsp` client against its limit, a one-call-at-a-time client, and DSPy.

A loopback OpenAI-compatible server (`python -m dsp.llm.testserver`, its own process, so that it
does not share our GIL) answers every call after a fixed latency L with no concurrency limit of its
own, so N calls at concurrency C cannot take less than N x L / C: the limit is C / L calls a second.

Each measurement runs in a fresh worker process (this file with --worker) and reports its own wall
time, from the first call to the last answer, and its peak RSS:

- dsp:        `AsyncLLMClient` with its SQLite cache (a fresh file each run), at concurrency C.
- sequential: the paper's code's way, one blocking `openai` call after another, no cache.
- dspy:       DSPy's `dspy.LM` (`acall`, its disk and memory cache in a fresh folder) with C calls
              in flight, in a virtual environment this script creates (`--dspy-venv`; not a
              dependency of the project).
- every worker makes one warm-up call (not one of the N) before its clock starts.
- cached re-runs: the same prompts again in a new process on the first run's cache; the server's
  request counter says how many calls reached the network (should be 0).

Usage: python -m bench.llm_throughput [--latency 0.02] [--n 1000] [--runs 5] [--concurrency 1 4 16 64]
       [--cache-entries 10000] [--no-dspy] [--no-sequential] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MODEL = "test-model"
MAX_TOKENS = 32
# One call before the clock starts, in every worker: connection set-up and first-call
# initialisation (DSPy's takes seconds) are a per-process cost, not a per-call one.
WARM_UP = "Article: warm-up\nKeywords: warm-up\nSummary:"
FILLER = (
    "the council said on monday that the new bridge would open next spring after two years of work "
    "on the river crossing which had been delayed by floods and a shortage of steel "
).split()


def make_prompts(n: int, words: int = 200) -> list[str]:
    """Distinct prompts about the size of a short article; the server echoes the Keywords line."""
    body = " ".join((FILLER * (words // len(FILLER) + 1))[:words])
    return [f"Article: {body} (story {i})\nKeywords: bridge; story {i}\nSummary:" for i in range(n)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# -- workers: each runs in its own process and prints one JSON line ------------------------------


async def _dsp(url: str, prompts: list[str], concurrency: int, cache: str) -> dict:
    from dsp.llm.cache import LLMCache
    from dsp.llm.client import AsyncLLMClient
    from dsp.llm.types import LLMConfig, LLMRequest, LLMResult

    client = AsyncLLMClient(
        LLMConfig(base_url=url, model=MODEL, api_key="bench", concurrency=concurrency), LLMCache(cache)
    )
    requests = [LLMRequest(prompt=p, max_tokens=MAX_TOKENS) for p in prompts]
    await client.complete(LLMRequest(prompt=WARM_UP, max_tokens=MAX_TOKENS))
    t0 = time.perf_counter()
    results = await client.complete_many(requests)
    wall = time.perf_counter() - t0
    await client.aclose()
    client.cache.close()
    ok = sum(isinstance(r, LLMResult) for r in results)
    return {"wall": wall, "ok": ok, "cache_hits": client.usage.cache_hits}


def worker_dsp(args) -> dict:
    return asyncio.run(_dsp(args.url, make_prompts(args.n), args.c, args.cache))


def worker_sequential(args) -> dict:
    import openai

    api = openai.OpenAI(base_url=args.url, api_key="bench", max_retries=0)
    prompts = make_prompts(args.n)
    api.completions.create(model=MODEL, prompt=WARM_UP, max_tokens=MAX_TOKENS, temperature=0.0)
    t0 = time.perf_counter()
    ok = 0
    for p in prompts:
        r = api.completions.create(model=MODEL, prompt=p, max_tokens=MAX_TOKENS, temperature=0.0)
        ok += bool(r.choices)
    return {"wall": time.perf_counter() - t0, "ok": ok}


async def _dspy(url: str, prompts: list[str], concurrency: int, cache: str) -> dict:
    import dspy

    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=cache)
    lm = dspy.LM(
        f"openai/{MODEL}",
        api_base=url,
        api_key="bench",
        model_type="text",
        temperature=0.0,
        max_tokens=MAX_TOKENS,
        cache=True,
        num_retries=0,
    )
    sem = asyncio.Semaphore(concurrency)

    async def one(p: str):
        async with sem:
            return await lm.acall(prompt=p)

    await lm.acall(prompt=WARM_UP)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)
    wall = time.perf_counter() - t0
    ok = sum(isinstance(r, list) and len(r) > 0 for r in results)
    errors = [repr(r)[:200] for r in results if isinstance(r, BaseException)][:3]
    return {"wall": wall, "ok": ok, "errors": errors, "version": dspy.__version__}


def worker_dspy(args) -> dict:
    return asyncio.run(_dspy(args.url, make_prompts(args.n), args.c, args.cache))


WORKERS = {"dsp": worker_dsp, "sequential": worker_sequential, "dspy": worker_dspy}


# -- the orchestrator -------------------------------------------------------------------------------


def dsp_llm_flags(url: str, concurrency: int) -> list[str]:
    """The flags that point a `dsp` command at the latency server."""
    return ["--base-url", url, "--model", MODEL, "--api-key", "bench", "--concurrency", str(concurrency)]


class Server:
    def __init__(self, latency: float):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dsp.llm.testserver", "--latency", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = self.proc.stdout.readline().strip()

    def requests(self) -> int:
        with urllib.request.urlopen(self.url + "/_stats") as r:
            return json.load(r)["requests"]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_worker(python: str, kind: str, url: str, n: int, c: int, cache: str) -> dict:
    cmd = [python, __file__, "--worker", kind, "--url", url, "--n", str(n), "--c", str(c), "--cache", cache]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["ok"] != n:
        raise SystemExit(f"{kind} worker answered {result['ok']} of {n}: {result.get('errors')}")
    return result


def dspy_python(venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with dspy (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "dspy", "openai"], check=True)
    return str(python)


def measure(args) -> dict:
    server = Server(args.latency)
    kinds = ["dsp"] + ([] if args.no_dspy else ["dspy"])
    pythons = {"dsp": sys.executable, "sequential": sys.executable}
    if not args.no_dspy:
        pythons["dspy"] = dspy_python(Path(args.dspy_venv))
    rows: dict = {"latency": args.latency, "n": args.n, "runs": args.runs, "cores": os.cpu_count(), "table": []}
    tmp = Path(tempfile.mkdtemp(prefix="dsp-throughput-"))
    try:
        for c in args.concurrency:
            walls: dict[str, list[float]] = {k: [] for k in kinds}
            rss: dict[str, list[float]] = {k: [] for k in kinds}
            for run in range(args.runs):
                for kind in kinds:  # side by side: each run measures every client once
                    r = run_worker(pythons[kind], kind, server.url, args.n, c, str(tmp / f"{kind}-{c}-{run}"))
                    walls[kind].append(r["wall"])
                    rss[kind].append(r["peak_rss_mb"])
                    if "version" in r:
                        rows["dspy_version"] = r["version"]
            row = {"concurrency": c, "limit_calls_per_s": c / args.latency}
            for kind in kinds:
                row[f"{kind}_calls_per_s"] = args.n / statistics.median(walls[kind])
                row[f"{kind}_walls"] = walls[kind]
                row[f"{kind}_peak_rss_mb"] = statistics.median(rss[kind])
            rows["table"].append(row)
            print(json.dumps(row), file=sys.stderr)
        if not args.no_sequential:
            seq = [
                run_worker(sys.executable, "sequential", server.url, args.n, 1, "-")["wall"] for _ in range(args.runs)
            ]
            rows["sequential_calls_per_s"] = args.n / statistics.median(seq)
            rows["sequential_walls"] = seq
        # cached re-runs, each in a new process on the last run's cache at the highest concurrency
        c = max(args.concurrency)
        rows["cached"] = {}
        for kind in kinds:
            walls, sent = [], []
            for _ in range(args.runs):
                before = server.requests()
                walls.append(
                    run_worker(pythons[kind], kind, server.url, args.n, c, str(tmp / f"{kind}-{c}-{args.runs - 1}"))[
                        "wall"
                    ]
                )
                sent.append(server.requests() - before)  # the warm-up prompt is cached too
            rows["cached"][kind] = {"calls_per_s": args.n / statistics.median(walls), "network_calls": max(sent)}
        if args.cache_entries:
            path = tmp / "size.sqlite"
            run_worker(sys.executable, "dsp", server.url, args.cache_entries, max(args.concurrency), str(path))
            size = sum(p.stat().st_size for p in tmp.glob("size.sqlite*"))
            rows["cache_bytes_per_10k"] = size * 10_000 / args.cache_entries
            rows["prompt_chars"] = len(make_prompts(1)[0])
    finally:
        server.close()
    return rows


def report(rows: dict) -> str:
    kinds = [k for k in ("dsp", "dspy") if f"{k}_calls_per_s" in rows["table"][0]]
    head = "| C | limit C/L | " + " | ".join(f"{k} calls/s | {k} / limit" for k in kinds)
    head += " | dsp / dspy |" if len(kinds) == 2 else " |"
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows["table"]:
        cells = [f"{r['concurrency']}", f"{r['limit_calls_per_s']:.0f}"]
        for k in kinds:
            cells += [f"{r[f'{k}_calls_per_s']:.1f}", f"{r[f'{k}_calls_per_s'] / r['limit_calls_per_s']:.0%}"]
        if len(kinds) == 2:
            cells.append(f"{r['dsp_calls_per_s'] / r['dspy_calls_per_s']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    if "sequential_calls_per_s" in rows:
        lines.append(
            f"\nsequential one-call-at-a-time client: {rows['sequential_calls_per_s']:.1f} calls/s "
            f"(limit 1/L = {1 / rows['latency']:.0f})"
        )
    for k, v in rows["cached"].items():
        lines.append(
            f"cached re-run, {k}: {v['calls_per_s']:.0f} calls/s, {v['network_calls']} calls reached the server"
        )
    peak = ", ".join(f"{k} {rows['table'][-1][f'{k}_peak_rss_mb']:.0f} MB" for k in kinds)
    lines.append(f"peak RSS of a worker at C={rows['table'][-1]['concurrency']}: {peak}")
    if "cache_bytes_per_10k" in rows:
        lines.append(
            f"cache file per 10,000 entries: {rows['cache_bytes_per_10k'] / 1e6:.1f} MB "
            f"(prompts of {rows['prompt_chars']} characters)"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--cache-entries", type=int, default=10_000)
    ap.add_argument("--no-dspy", action="store_true")
    ap.add_argument("--no-sequential", action="store_true")
    ap.add_argument("--dspy-venv", default=str(Path(tempfile.gettempdir()) / "dsp-bench-dspy-venv"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--c", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        result = WORKERS[args.worker](args)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return
    rows = measure(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(report(rows))


if __name__ == "__main__":
    main()
