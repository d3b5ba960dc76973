"""The LLM's score of an extractive policy's greedy hints at several hint lengths, paired on the same articles.

    python -m bench.hint_length RUN_OR_POLICY --data DATA --lengths 6 8 12 16 24 --limit 100 --cache CACHE

`dsp sft` picks the hint length by hint F1 against the pseudo-labels; this asks the LLM instead.
One encoder pass gives every length's hints; each (article, hint) is one greedy LLM call
(cached, so lengths whose hints coincide cost nothing more). The embedded LLM serves unless
--base-url is given. Prints mean ROUGE-avg per length with 95% CIs and the paired difference
to the policy's own length.
"""

from __future__ import annotations

import argparse
import json

from dsp.data import load_examples
from dsp.llm.session import run_with_llm
from dsp.llm.types import LLMConfig
from dsp.metrics import mean_ci
from dsp.policy import load_policy
from dsp.roundtrip import ask, mean_scores
from dsp.shots import draw_shots
from dsp.tasks.config import load_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--lengths", type=int, nargs="+", default=[6, 8, 12, 16, 24])
    ap.add_argument("--cache", default=None)
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", default=None, help="write the per-length scores here")
    args = ap.parse_args()

    task = load_task("cnndm").task
    policy = load_policy(args.policy)
    own = policy.hint_words
    lengths = sorted(set(args.lengths) | {own})
    dev = load_examples(args.data, split=args.split, limit=args.limit)
    shots = draw_shots(args.data, task.shots, dev)
    hints = policy.hints_by_length([e.input for e in dev], lengths)

    async def work(client):
        examples = [e for _ in lengths for e in dev]
        answers = await ask(client, task, examples, [hints[k][i] for k in lengths for i in range(len(dev))], shots)
        return mean_scores(task, examples, answers), client.usage.as_dict()

    flat, usage = run_with_llm(LLMConfig(base_url=args.base_url, model=args.model), args.cache, work)
    # NaN where a call failed for good
    scores = {k: flat[j * len(dev) : (j + 1) * len(dev)] for j, k in enumerate(lengths)}
    print(f"| hint words | ROUGE-avg | 95% CI | Δ vs {own} (the policy's) | 95% CI of Δ |")
    print("|---:|---:|---:|---:|---:|")
    for k in lengths:
        m, ci = mean_ci(scores[k])
        d, dci = mean_ci([a - b for a, b in zip(scores[k], scores[own])])
        print(f"| {k} | {m:.2f} | ± {ci:.2f} | " + ("- | -" if k == own else f"{d:+.2f} | ± {dci:.2f}") + " |")
    print(f"LLM: {usage['requests']} requests, {usage['cache_hits']} cache hits")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"lengths": lengths, "scores": scores, "llm": usage}, f)


if __name__ == "__main__":
    main()
