"""Is the LLM's reward a function of the hint? The same prompts again, uncached, against an RL run's cache.

    python -m bench.reward_noise CACHE.sqlite TRAIN.jsonl [--n 48] [--seed 0] [--twice]

Takes N hinted summarization prompts that an RL run sent (its LLM cache), sends them again to the embedded
LLM with an empty cache and in a shuffled order (so each decodes beside other requests than it did in the
run), and compares: how many answers are identical, and the mean |ROUGE-avg difference| of the same prompt's
two answers. With greedy decoding a difference comes only from the server (with two slots, which request
shares a batch changes float rounding). Compare it with `bench/reward_landscape.py`'s differences between
hints: the part of those that the same hint also shows is noise no policy can learn from.
Only prompts made for the server that is running now (the cache key's namespace) are taken.
`--twice` compares two fresh rounds of the same prompts instead (the second in reverse order), for a server
the cache has no answers of (for example one slot: `DSP_EMBEDDED_SERVER` with `--parallel 1`).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics as st
import tempfile
from pathlib import Path

from bench.reward_landscape import article_key, load_refs
from dsp.llm.session import run_with_llm
from dsp.llm.types import LLMConfig, LLMRequest
from dsp.metrics import rouge_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("train")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--twice", action="store_true", help="send the prompts twice and compare the rounds")
    args = ap.parse_args()
    refs = load_refs(args.train)
    db = sqlite3.connect(f"file:{args.cache}?mode=ro", uri=True)
    rows = []
    for request, answer in db.execute("select request, answer from answers order by key"):
        req = json.loads(request)
        if (key := article_key(req.get("prompt") or "")) in refs and req.get("temperature") == 0:
            rows.append((req, json.loads(answer)["text"], refs[key]))
    random.Random(args.seed).shuffle(rows)
    rows = rows[: args.n]

    async def work(client):
        namespace = client.config.cache_namespace
        mine = rows if args.twice else [r for r in rows if r[0].get("namespace") == namespace]
        if len(mine) < len(rows):
            print(f"skipped {len(rows) - len(mine)} prompts made for another server than {namespace!r}")
        requests = [
            LLMRequest(
                prompt=q["prompt"],
                max_tokens=q["max_tokens"],
                temperature=q["temperature"],
                top_p=q["top_p"],
                stop=tuple(q["stop"] or ()),
                seed=q["seed"],
                sample_index=q["sample_index"],
            )
            for q, _, _ in mine
        ]
        first = await client.complete_many(requests, desc="llm")
        if not args.twice:
            return mine, first
        client.cache = None  # the second round is sent, not served from the first
        second = (await client.complete_many(requests[::-1], desc="llm"))[::-1]
        return [
            (q, a.text if not isinstance(a, BaseException) else None, ref) for (q, _, ref), a in zip(mine, first)
        ], second

    with tempfile.TemporaryDirectory() as tmp:  # an empty cache: every prompt is sent again
        mine, results = run_with_llm(LLMConfig(concurrency=2), Path(tmp) / "cache.sqlite", work)
    same, diffs = 0, []
    for (_, before, ref), now in zip(mine, results):
        if isinstance(now, BaseException) or before is None:
            continue
        same += now.text == before
        diffs.append(abs(rouge_scores(now.text, ref)["rouge_avg"] - rouge_scores(before, ref)["rouge_avg"]))
    print(
        f"prompts: {len(diffs)}; identical answers: {same}; mean |reward difference| of the same prompt: "
        f"{st.mean(diffs):.2f} (median {st.median(diffs):.2f}); over the prompts whose answer changed: "
        f"{st.mean([d for d in diffs if d > 0] or [0]):.2f}"
    )


if __name__ == "__main__":
    main()
