"""Embedded-LLM throughput: calls a second of server configurations on the same CNN/DM prompts, side by side.

    python -m bench.embedded_llm --lcp-python /tmp/lcpvenv/bin/python --configs lcp xl-s2 --rounds 3

Each configuration is a fresh server process (Gemma 3 270M Q4_K_M, 2 threads unless it says) and
the project's own client (no cache) at the configuration's concurrency; a round runs every
configuration once, in order, so the ratios are side by side. Two workloads:

- eval:  N dev articles, each with its oracle hint (what `dsp eval` sends), 1-shot.
- group: N/4 dev articles x 4 hints each (what an RL iteration sends: one article, several
         sampled hints, so the prompts share the few-shot block *and* the article).

It also compares each configuration's later rounds with its first round (is the server's greedy
answer a function of the prompt?), and records, per configuration, a streamed pass over the first 8 eval prompts at
concurrency 1 (time to first token = prompt processing; generation tokens a second), and it
compares every configuration's greedy answers with the first configuration's.

Configurations:
  lcp          llama-cpp-python's server (a portable source build), concurrency 2: today's embedded LLM
  xl-s1        xllamacpp (llama.cpp's C++ server), 1 slot, concurrency 1
  xl-sK        xllamacpp, K slots, concurrency K (continuous batching)
  xl-sK-swa    the same with a full-size sliding-window cache (prefix reuse on Gemma 3's SWA layers)
  xl-sK-nocp   xllamacpp, K slots, no reuse of a slot's cached prompt prefix (`--no-cache-prompt`)
  xl-2x1t      two 1-thread xllamacpp processes, 1 slot each, the prompts split between them
  ...-norepack weights kept in the file's layout (llama.cpp's --no-repack)
  ...-poll0    idle worker threads sleep instead of spinning (llama.cpp's --poll 0)
  ...-0shot    any of these with zero-shot prompts (the others have one shot, the old cnndm default)
  ...-stop     any of these with the answer also stopped where the model starts the prompt's next
               line ("\nQ:", "\nHint:", "\nA:"): a base model that repeats the prompt format
  ...-cut      any of these with the answer streamed and closed at its first repeated sentence
               (`stop_repeats`, dsp.llm.repeats)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dsp.data import load_examples
from dsp.llm.client import AsyncLLMClient
from dsp.llm.local import MODEL_ALIAS, free_port, model_path
from dsp.llm.types import LLMConfig, LLMRequest
from dsp.shots import draw_shots
from dsp.tasks.config import load_task

ROOT = Path(__file__).resolve().parents[1]
# Pinned here, not read from the task file, so a configuration means the same whatever cnndm's defaults become.
BASE_STOP = ("\n\n", "\nArticle:")
EXTRA_STOP = ("\nQ:", "\nHint:", "\nA:")


def prompts(data: str, n: int, n_shots: int, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(prompts, references) per workload."""
    task = load_task("cnndm").task
    dev = load_examples(data, split="dev", limit=n, input_field="article", target_field="highlights")
    shots = draw_shots(data, n_shots, dev, input_field="article", target_field="highlights")
    rng = random.Random(seed)
    eval_prompts = [task.prompt(e, task.pseudo_label(e), shots) for e in dev]
    group, group_refs = [], []
    for e in dev[: max(1, n // 4)]:
        phrases = task.pseudo_label(e).split(task.separator)
        for _ in range(4):  # four "sampled" hints: random subsets of the oracle phrases
            keep = [p for p in phrases if rng.random() < 0.7] or phrases[:1]
            group.append(task.prompt(e, task.separator.join(keep), shots))
            group_refs.append(e.target)
    return {"eval": eval_prompts, "group": group}, {"eval": [e.target for e in dev], "group": group_refs}


def start(config: str, lcp_python: str | None, threads: int, port: int) -> subprocess.Popen:
    model = str(model_path())
    log = open(f"/tmp/bench-embedded-{config}-{port}.log", "w")
    if config == "lcp":
        cmd = [
            lcp_python,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            str(threads),
            "--verbose",
            "False",
        ]
    else:
        parts = config.split("-")
        slots = int(parts[1][1:]) if parts[1].startswith("s") else 1
        cmd = [
            sys.executable,
            "-m",
            "dsp.llm.xllamacpp_server",
            "--model",
            model,
            "--alias",
            MODEL_ALIAS,
            "--port",
            str(port),
            "--threads",
            str(threads),
            "--parallel",
            str(slots),
            "--ctx",
            "4096",
        ]
        if "swa" in parts:
            cmd.append("--swa-full")
        if "nocp" in parts:
            cmd.append("--no-cache-prompt")
        if "norepack" in parts:
            cmd.append("--no-repack")
        if "poll0" in parts:
            cmd += ["--poll", "0"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


async def run_calls(
    urls: list[str], texts: list[str], concurrency: int, max_tokens: int, stop: tuple[str, ...], cut: bool = False
):
    """All prompts through the project's client; prompts split round-robin between the servers."""
    clients = [
        AsyncLLMClient(LLMConfig(base_url=u, model=MODEL_ALIAS, concurrency=concurrency, timeout=600)) for u in urls
    ]
    reqs = [LLMRequest(prompt=t, max_tokens=max_tokens, stop=stop, stop_repeats=cut) for t in texts]
    t0 = time.perf_counter()
    parts = await asyncio.gather(*(c.complete_many(reqs[i :: len(clients)]) for i, c in enumerate(clients)))
    wall = time.perf_counter() - t0
    answers: list = [None] * len(reqs)
    for i, part in enumerate(parts):
        answers[i :: len(clients)] = part
    for c in clients:
        await c.aclose()
    bad = [a for a in answers if isinstance(a, BaseException)]
    if bad:
        raise SystemExit(f"{len(bad)} calls failed: {bad[0]}")
    return wall, answers


def streamed(url: str, texts: list[str], max_tokens: int, stop: tuple[str, ...]) -> list[dict]:
    """Time to first token and generation speed, one call at a time."""
    out = []
    for t in texts:
        body = {
            "model": MODEL_ALIAS,
            "prompt": t,
            "max_tokens": max_tokens,
            "stop": list(stop),
            "temperature": 0,
            "stream": True,
        }
        req = urllib.request.Request(
            url + "/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        t0 = time.perf_counter()
        first, chunks = None, 0
        with urllib.request.urlopen(req, timeout=600) as r:
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                piece = json.loads(line[6:])
                if piece.get("choices") and piece["choices"][0].get("text"):
                    chunks += 1
                    first = first or time.perf_counter()
        end = time.perf_counter()
        out.append(
            {
                "ttft": (first or end) - t0,
                "total": end - t0,
                "tokens": chunks,
                "gen_tps": (chunks - 1) / (end - first) if first and chunks > 1 and end > first else None,
            }
        )
    return out


def measure(config: str, works: dict[int, dict[str, list[str]]], args, task) -> dict:
    two = config.startswith("xl-2x1t")
    threads = 1 if two else args.threads
    ports = [free_port() for _ in range(2 if two else 1)]
    cut = config.endswith("-cut")
    base = config.removesuffix("-cut")
    stop = BASE_STOP + (EXTRA_STOP if base.endswith("-stop") else ())
    base = base.removesuffix("-stop")
    work = works[0 if base.endswith("-0shot") else 1]
    config_server = base.removesuffix("-0shot")
    one = "-".join(["xl-s1"] + [p for p in ("nocp", "norepack", "poll0") if p in config_server.split("-")])
    procs = [start(one if two else config_server, args.lcp_python, threads, p) for p in ports]
    urls = [f"http://127.0.0.1:{p}/v1" for p in ports]
    neighbour = None
    try:
        if args.neighbour:  # a CPU job beside the server (a training): started, given time to load, then measured
            neighbour = subprocess.Popen(
                shlex.split(args.neighbour),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(args.neighbour_warmup)
        for u, p in zip(urls, procs):
            wait_ready(u, p)
        conc = 1 if two or config_server == "xl-s1" else (2 if config_server == "lcp" else int(base.split("-")[1][1:]))
        asyncio.run(run_calls(urls, work["eval"][:1], 1, 8, stop))  # warm-up: model pages in
        result: dict = {"config": config, "concurrency": conc}
        for name, texts in work.items():
            # --reverse: odd rounds send the prompts in the opposite order (each prompt after other neighbours,
            # and to the other server of a pair), the answers put back in prompt order for the comparison.
            flip = args.reverse and args.round % 2 == 1
            wall, answers = asyncio.run(
                run_calls(urls, texts[::-1] if flip else texts, conc, task.max_tokens, stop, cut)
            )
            answers = answers[::-1] if flip else answers
            result[name] = {
                "calls": len(texts),
                "wall": wall,
                "calls_per_s": len(texts) / wall,
                "prompt_tokens": sum(a.prompt_tokens for a in answers),
                "completion_tokens": sum(a.completion_tokens for a in answers),
                "at_cap": sum(a.completion_tokens >= task.max_tokens for a in answers),
                "texts": [a.text for a in answers],
            }
        if args.stream:
            result["stream"] = streamed(urls[0], work["eval"][: args.stream], task.max_tokens, stop)
        return result
    finally:
        if neighbour is not None:
            os.killpg(neighbour.pid, signal.SIGTERM)
            neighbour.wait()
        for p in procs:
            p.terminate()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cnndm"))
    ap.add_argument("--n", type=int, default=50, help="dev articles (the group workload takes n/4 x 4 hints)")
    ap.add_argument("--configs", nargs="+", default=["lcp", "xl-s2"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stream", type=int, default=8, help="prompts in the streamed timing pass (0: none)")
    ap.add_argument("--lcp-python", default=None, help="a Python with llama-cpp-python[server] (for `lcp`)")
    ap.add_argument("--out", default="/tmp/bench-embedded.json")
    ap.add_argument("--reverse", action="store_true", help="odd rounds send the prompts in reverse order")
    ap.add_argument(
        "--neighbour",
        default=None,
        help="a command run beside each configuration's server while it is measured (a CPU job such as a "
        "`dsp sft` training), stopped after",
    )
    ap.add_argument("--neighbour-warmup", type=float, default=30.0, help="seconds the neighbour runs before the calls")
    args = ap.parse_args()
    if "lcp" in args.configs and not args.lcp_python:
        raise SystemExit("config 'lcp' needs --lcp-python")
    task = load_task("cnndm").task
    built = {k: prompts(args.data, args.n, k) for k in (0, 1)}  # zero-shot and one-shot prompts
    works, refs = {k: w for k, (w, _) in built.items()}, built[1][1]
    runs = []
    for r in range(args.rounds):
        for config in args.configs:
            args.round = r
            res = measure(config, works, args, task)
            res["round"] = r
            runs.append(res)
            Path(args.out).write_text(json.dumps(runs, indent=1))
            print(
                f"round {r} {config:10s} "
                + "  ".join(f"{w}: {res[w]['calls_per_s']:.3f} calls/s ({res[w]['wall']:.0f} s)" for w in refs),
                flush=True,
            )
    report(runs, refs, args.configs)


def report(runs: list[dict], refs: dict[str, list[str]], configs: list[str]) -> None:
    from dsp.metrics import rouge_scores

    base = configs[0]
    workloads = list(refs)
    print(
        f"\n| config | workload | calls/s (median of {max(r['round'] for r in runs) + 1}) | x {base} "
        "| answers identical to "
        + base
        + " | identical in later rounds | completion tokens | at max_tokens | ROUGE-avg |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in workloads:
        med = {c: statistics.median(r[w]["calls_per_s"] for r in runs if r["config"] == c) for c in configs}
        ref = next(r for r in runs if r["config"] == base)[w]["texts"]
        for c in configs:
            first = next(r for r in runs if r["config"] == c)[w]
            same = sum(a == b for a, b in zip(first["texts"], ref))
            rouge = statistics.mean(rouge_scores(t, r)["rouge_avg"] for t, r in zip(first["texts"], refs[w]))
            # The same configuration's rounds, against its first: does a server repeat its own greedy answers?
            again = [sum(a == b for a, b in zip(first["texts"], r[w]["texts"])) for r in runs if r["config"] == c][1:]
            print(
                f"| {c} | {w} | {med[c]:.3f} | {med[c] / med[base]:.2f}x | {same}/{len(ref)} "
                f"| {', '.join(f'{k}/{len(ref)}' for k in again) or '-'} "
                f"| {first['completion_tokens']} | {first['at_cap']} | {rouge:.2f} |"
            )
    for c in configs:
        s = next(r for r in runs if r["config"] == c).get("stream")
        if s:
            print(
                f"{c}: time to first token median {statistics.median(x['ttft'] for x in s):.2f} s, generation "
                f"{statistics.median(x['gen_tps'] for x in s if x['gen_tps']):.1f} tokens/s, call "
                f"{statistics.median(x['total'] for x in s):.2f} s"
            )


if __name__ == "__main__":
    main()
