"""How smooth is the LLM's reward in the hint? Read from an RL run's LLM cache, no new calls.

    python -m bench.reward_landscape CACHE.sqlite TRAIN.jsonl [--input-field article --target-field highlights] [--sampled]

Every cached answer to a hinted summarization prompt is scored (ROUGE-avg) against its article's
reference; hints of the same article are paired, and the pairs are binned by how many hint words they
share (Jaccard of the word sets). If the reward were smooth in the hint, hints that share most of their
words would score alike; a mean |reward difference| that barely falls with overlap says small hint changes
move the reward about as much as large ones, which is what a policy-gradient estimate has to average out.
Prompts are matched to articles by the first 200 characters after the last "Article: " label (the input
follows the few-shot examples). Only greedy answers (temperature 0) are paired by hint; `--sampled` also
compares the answers of one prompt sampled at a temperature above 0 (`dsp rl --llm-samples 2`): how far
apart two draws of the same hint's reward are.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import statistics as st

from dsp.metrics import rouge_scores


def load_refs(path: str, input_field: str = "article", target_field: str = "highlights") -> dict[str, str]:
    """{first 200 characters of an input: its reference}, the key `article_key` finds in a prompt."""
    with open(path, encoding="utf-8") as f:
        return {row[input_field][:200]: row[target_field] for row in map(json.loads, f)}


def article_key(prompt: str) -> str | None:
    """The input's first 200 characters in a hinted prompt (after the last "Article: "), None if not one."""
    if "\nHint: " not in prompt or "Article: " not in prompt:
        return None
    return prompt.rsplit("\nHint: ", 1)[0].rsplit("Article: ", 1)[1][:200]


def scored_answers(cache: str, refs: dict[str, str]) -> list[tuple[dict, str, float]]:
    """(request, article start, ROUGE-avg of the cached answer) for every hinted prompt of a known article."""
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    out = []
    for request, answer in db.execute("select request, answer from answers"):
        req = json.loads(request)
        if (key := article_key(req.get("prompt") or "")) in refs:
            out.append((req, key, rouge_scores(json.loads(answer)["text"], refs[key])["rouge_avg"]))
    return out


def rewards_by_article(answers: list[tuple[dict, str, float]]) -> dict[str, dict[str, float]]:
    """{article start: {hint: ROUGE-avg}} over the greedy answers."""
    groups: dict[str, dict[str, float]] = {}
    for req, key, score in answers:
        if req.get("temperature") == 0:
            hint = req["prompt"].rsplit("\nHint: ", 1)[1].rsplit("\nA:", 1)[0]
            groups.setdefault(key, {})[hint] = score
    return groups


def sampled_differences(answers: list[tuple[dict, str, float]]) -> list[float]:
    """|ROUGE-avg of draw 0 - of draw 1| for every prompt sampled twice at a temperature > 0."""
    draws: dict[tuple[str, float], dict[int, float]] = {}
    for req, _, score in answers:
        if (req.get("temperature") or 0) > 0:
            draws.setdefault((req["prompt"], req["temperature"]), {})[req.get("sample_index", 0)] = score
    return [abs(d[0] - d[1]) for d in draws.values() if 0 in d and 1 in d]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("train")
    ap.add_argument("--input-field", default="article")
    ap.add_argument("--target-field", default="highlights")
    ap.add_argument("--sampled", action="store_true", help="also compare two sampled answers of the same prompt")
    args = ap.parse_args()
    answers = scored_answers(args.cache, load_refs(args.train, args.input_field, args.target_field))  # one read
    groups = [g for g in rewards_by_article(answers).values() if len(g) > 1]
    bins: dict[int, list[float]] = {}
    for g in groups:
        for (h1, r1), (h2, r2) in itertools.combinations(g.items(), 2):
            w1, w2 = (set(h.lower().replace(";", " ").split()) for h in (h1, h2))
            bins.setdefault(min(4, int(5 * len(w1 & w2) / len(w1 | w2))), []).append(abs(r1 - r2))
    print(
        f"articles with 2+ hints: {len(groups)}; hints: {sum(map(len, groups))}; "
        f"mean within-article reward std: {st.mean(st.pstdev(g.values()) for g in groups):.2f}"
    )
    print("| hint words shared (Jaccard) | pairs | mean abs reward difference | median |\n|---|---:|---:|---:|")
    for b in sorted(bins):
        print(f"| {b / 5:.1f}-{(b + 1) / 5:.1f} | {len(bins[b])} | {st.mean(bins[b]):.2f} | {st.median(bins[b]):.2f} |")
    if args.sampled:
        d = sampled_differences(answers)
        print(
            f"\nprompts sampled twice: {len(d)}"
            + (f"; two draws' reward differs by {st.mean(d):.2f} on average (median {st.median(d):.2f})" if d else "")
        )


if __name__ == "__main__":
    main()
