"""Signal before spending: how much the LLM's reward tells hints of one article apart (issue 26).

    python -m bench.reward_snr --policy runs/sft --out OUT [--n 40 --group 8 --temperatures 0.5,1]

For N training articles and a policy, at each policy temperature: the greedy hint and GROUP sampled hints
per article, each scored by the LLM (the task's reward: ROUGE-avg of its greedy answer), the greedy prompts
sent a second time with no cache (the reward's own noise; 0 on a reproducible LLM). Printed per temperature:

- signal: the standard deviation of the reward between sampled hints of one article (mean over articles);
- noise: the standard deviation of one prompt's reward sent again (0 on a reproducible LLM);
- between: the standard deviation of the articles' mean rewards (what a baseline must take out);
- distinct: sampled hints per group that differ from each other (a cold policy repeats itself);
- beat greedy: the share of sampled hints scoring above their article's greedy hint (what ReMax learns from),
  and the mean of (best of K samples - greedy) for K = 2, 4, 8 (what a group of K can find above what
  `dsp eval` reports; a subset's best is averaged over the group's subsets of that size).

Answers are cached in OUT/cache.sqlite; rows in OUT/rows.jsonl, the table in OUT/table.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from pathlib import Path

from dsp.data import load_examples
from dsp.llm.client import AsyncLLMClient
from dsp.llm.types import LLMConfig
from dsp.policy import load_policy
from dsp.roundtrip import round_trip
from dsp.shots import draw_shots
from dsp.tasks.config import load_task


def best_of(rewards: list[float], greedy: float, k: int) -> float:
    """Mean over the group's k-subsets of (their best reward - the greedy hint's)."""
    subsets = list(itertools.combinations(rewards, k))
    return statistics.mean(max(s) for s in subsets) - greedy


def summarize(rows: list[dict], group: int) -> dict[str, float]:
    sd = [statistics.pstdev(r["sampled"]) for r in rows]
    noise = [abs(r["greedy"] - r["greedy_again"]) / math.sqrt(2) for r in rows]
    out = {
        "signal": statistics.mean(sd),
        "noise": math.sqrt(statistics.mean(n * n for n in noise)),
        "between": statistics.stdev(statistics.mean(r["sampled"]) for r in rows),
        "distinct": statistics.mean(len(set(r["hints"])) for r in rows),
        "beat_greedy": statistics.mean(sum(s > r["greedy"] for s in r["sampled"]) / group for r in rows),
        "greedy": statistics.mean(r["greedy"] for r in rows),
    }
    for k in (2, 4, 8):
        if k <= group:
            out[f"best_of_{k}"] = statistics.mean(best_of(r["sampled"], r["greedy"], k) for r in rows)
    return out


async def measure(client: AsyncLLMClient, args: argparse.Namespace) -> list[dict]:
    task = load_task(args.task).task
    fields = dict(input_field="article", target_field="highlights")
    articles = load_examples(args.data, split="train", limit=args.n, **fields)
    shots = draw_shots(args.data, task.shots, [], **fields)
    articles = [a for a in articles if a not in shots]  # never an article scored with itself as the shot
    policy = load_policy(args.policy)
    policy.train(False)
    greedy = policy.generate([a.input for a in articles])
    first = await round_trip(client, task, articles, greedy, shots, desc="greedy")
    again = await round_trip(fresh(client), task, articles, greedy, shots, desc="greedy again")
    rows = []
    for temperature in (float(t) for t in args.temperatures.split(",")):
        policy.temperature = temperature
        import torch

        torch.manual_seed(args.seed)
        with torch.no_grad():
            *_, hints = policy.sample_actions([a.input for a in articles], args.group)
        examples = [a for a in articles for _ in range(args.group)]
        scores = await round_trip(client, task, examples, hints, shots, desc=f"sampled at {temperature}")
        for i, a in enumerate(articles):
            part = slice(i * args.group, (i + 1) * args.group)
            rows.append(
                {
                    "temperature": temperature,
                    "id": a.id,
                    "greedy_hint": greedy[i],
                    "greedy": first[i],
                    "greedy_again": again[i],
                    "hints": hints[part],
                    "sampled": scores[part],
                }
            )
    return rows


def fresh(client: AsyncLLMClient) -> AsyncLLMClient:
    """A client on the same backend with no cache: the prompt is really sent again."""
    pool = getattr(client, "pool", None)
    if pool is None:
        return AsyncLLMClient(client.config, None)
    from dsp.llm.embedded import EmbeddedClient

    return EmbeddedClient(client.config, None, pool)


def table(rows: list[dict], group: int) -> str:
    ks = [k for k in (2, 4, 8) if k <= group]
    lines = [
        "| policy temperature | signal (sd between hints) | noise (sd, same prompt again) | between articles (sd) | "
        "distinct hints / group | greedy reward | samples above greedy | "
        + " | ".join(f"best of {k} - greedy" for k in ks)
        + " |",
        "|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(ks),
    ]
    for t in sorted({r["temperature"] for r in rows}):
        s = summarize([r for r in rows if r["temperature"] == t], group)
        lines.append(
            f"| {t:g} | {s['signal']:.2f} | {s['noise']:.2f} | {s['between']:.2f} | {s['distinct']:.1f} | "
            f"{s['greedy']:.2f} | {s['beat_greedy']:.0%} | "
            + " | ".join(f"{s[f'best_of_{k}']:+.2f}" for k in ks)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cnndm"))
    ap.add_argument("--task", default="cnndm")
    ap.add_argument("--n", type=int, default=40, help="training articles")
    ap.add_argument("--group", type=int, default=8, help="sampled hints per article and temperature")
    ap.add_argument("--temperatures", default="0.5,1")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from dsp.llm.session import run_with_llm

    rows = run_with_llm(LLMConfig(concurrency=8), out / "cache.sqlite", lambda client: measure(client, args))
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = table(rows, args.group)
    (out / "table.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
