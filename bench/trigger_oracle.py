"""The oracle row of a reasoning task: every trigger of prompts/reasoning/triggers.txt on every dev
question, with the embedded LLM (or OPENAI_BASE_URL/OPENAI_MODEL), cached.

A trigger has no reference to be read from, so the oracle hint of a question is the first trigger
with which the LLM answers it correctly (the zero-shot-CoT one when none does): an upper bound for
any policy that picks one of these triggers. Prints each trigger's accuracy and the oracle's, and
writes OUT/dev.jsonl (the dev questions with a `trigger` field, which `dsp eval` reads as the oracle
hint) next to a link to the task's train split, so that `dsp eval --data OUT` has both.

Usage: python -m bench.trigger_oracle OUT [--task multiarith] [--limit 100] [--cache FILE]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dsp.data import load_examples
from dsp.llm.session import run_with_llm
from dsp.llm.types import LLMConfig, LLMRequest, LLMResult
from dsp.metrics import mean_ci
from dsp.tasks.config import load_task
from dsp.tasks.reasoning import DEFAULT_TRIGGER, load_triggers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--task", default="multiarith")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args()
    loaded = load_task(args.task)
    task, source = loaded.task, loaded.data.source
    fields = dict(input_field=loaded.data.input_field, target_field=loaded.data.target_field)
    dev = load_examples(source, split="dev", limit=args.limit, **fields)
    triggers = load_triggers()
    requests = [
        LLMRequest(prompt=task.prompt(e, t), max_tokens=task.max_tokens, stop=task.stop) for e in dev for t in triggers
    ]  # zero-shot: the same prompts as the trigger search and eval

    async def work(client):
        return await client.complete_many(requests, desc="triggers x dev")

    config = LLMConfig(model=os.environ.get("OPENAI_MODEL"), base_url=os.environ.get("OPENAI_BASE_URL"))
    answers = run_with_llm(config, args.cache, work)
    correct = [
        [
            isinstance(a, LLMResult) and task.score(a.text, e)[task.metric] > 0
            for a in answers[i * len(triggers) : (i + 1) * len(triggers)]
        ]
        for i, e in enumerate(dev)
    ]
    print(f"| trigger | {task.metric} on {len(dev)} dev | 95% CI |\n|---|---:|---:|")
    for j, t in enumerate(triggers):
        m, ci = mean_ci([100.0 * row[j] for row in correct])
        print(f"| {t} | {m:.1f} | ± {ci:.1f} |")
    m, ci = mean_ci([100.0 * any(row) for row in correct])
    print(f"| oracle: the first trigger that is right, per question | {m:.1f} | ± {ci:.1f} |")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in Path(dev[0].where.rsplit(":", 1)[0]).read_text().splitlines()[: len(dev)]]
    with open(out / "dev.jsonl", "w", encoding="utf-8") as f:
        for row, hits in zip(rows, correct):
            row["trigger"] = next((t for t, ok in zip(triggers, hits) if ok), DEFAULT_TRIGGER)
            f.write(json.dumps(row) + "\n")
    train = Path(source) / "train.jsonl"
    if not (out / "train.jsonl").exists():
        (out / "train.jsonl").symlink_to(train.resolve())
    print(f"wrote {out}/dev.jsonl; {out}/train.jsonl links to {train}")


if __name__ == "__main__":
    main()
