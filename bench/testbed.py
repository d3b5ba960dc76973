"""The embedded test bed's figure of merit under decoding and prompt candidates (issue 25).

    python -m bench.testbed OUT --split validation --limit 100 --candidates greedy,rp32 [--again 24]
    python -m bench.testbed OUT --report            # the table again, from OUT's files, no LLM

For each candidate (a prompt, generation settings, an answer rule) and the same articles it sends the no-hint,
TF-IDF and oracle prompts to the embedded LLM (whatever `dsp` starts by default, so the environment picks the
server) and reports, paired over the articles:

- the three means (ROUGE-avg), the **room** (oracle - TF-IDF: what any learned hint can win over the
  heuristic) and the **gap** (oracle - no hint), each with its 95% CI;
- answer tokens (mean), the share of answers that stop at `max_tokens`, and uncached calls a second (time
  it on a quiet machine);
- with `--again N`: the first N prompts of each condition sent again with no cache, in reverse order and
  interleaved with the other conditions', and how many come back identical.

Answers are cached in OUT/cache.sqlite, so a re-run with more candidates or articles pays only for the new
prompts. Rows go to OUT/<candidate>.jsonl, the table to OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsp.data import Example, load_examples
from dsp.llm.client import AsyncLLMClient
from dsp.llm.repeats import cut_repeats
from dsp.llm.types import LLMConfig
from dsp.metrics import mean_ci
from dsp.policy.tfidf import TfidfPolicy
from dsp.tasks.base import Task
from dsp.tasks.config import load_task
from dsp.tasks.template import PromptTemplate

CONDITIONS = ("none", "tfidf", "oracle")
HINT_LAST = (
    "Article: {input}\nQ: Summarize the above article briefly in 2-3 sentences based on the hint.\n"
    "Hint: {hint}\nA: {target}"
)
# The hint before the instruction line: the last tokens before the answer are the instruction, so a short
# penalty window sees the answer's own tokens and not the hint.
HINT_FIRST = (
    "Article: {input}\nHint: {hint}\nQ: Summarize the above article briefly in 2-3 sentences based on "
    "the hint.\nA: {target}"
)
# The hint inside the instruction, as the words to use.
KEYWORDS = (
    "Article: {input}\nQ: Summarize the above article briefly in 2-3 sentences using these keywords: {hint}\n"
    "A: {target}"
)
DRY6 = {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 6, "dry_penalty_last_n": 96}
CNNDM_STOP = ("\n\n", "\nArticle:")
XSUM_STOP = ("\n", "\nArticle:")
XSUM_WITH_HINT = PromptTemplate.load("summarization/one_sentence_with_hint").text
XSUM_PLAIN = PromptTemplate.load("summarization/one_sentence_plain").text
QA_STOPS = ("\nQ:", "\nHint:", "\nA:")
PLAIN = "Article: {input}\nQ: Summarize the above article briefly in 2-3 sentences.\nA: {target}"
# The answer line named "Summary:" instead of "A:": zero-shot, the 270M base model answers an "A:" line with a
# newline and another "Q:" block for about 1 hinted prompt in 9 (an empty answer once stopped at "\nQ:").
SUMMARY_WITH_HINT = HINT_LAST.replace("\nA: ", "\nSummary: ")
SUMMARY_PLAIN = PLAIN.replace("\nA: ", "\nSummary: ")
# The same empty answers, ruled out by a grammar (llama.cpp's GBNF, a sampling field the server takes): the
# answer's first character after an optional space is neither a space nor a newline; the rest is free, so a
# prompt whose greedy answer does not start with a newline gets the same answer as without it.
NONEMPTY_GRAMMAR = 'root ::= " "? [^ \n] .*'


@dataclass(frozen=True)
class Candidate:
    """One way to ask: the prompt, the generation settings, and a rule applied to each answer."""

    with_hint: str = HINT_LAST
    plain: str = PLAIN
    base_stop: tuple[str, ...] = CNNDM_STOP
    """The stop strings every candidate of its task has (pinned here, not read from the task file, so a
    candidate means the same whatever the task file's defaults become)."""
    max_tokens: int = 96
    shots: int = 1
    sampling: dict[str, Any] = field(default_factory=dict)
    stop: tuple[str, ...] = ()  # stop strings besides the task's own
    cut: str | None = None  # "repeat": the answer ends before its first repeated sentence (dsp.llm.repeats),
    # derived from the whole answer here, so that it costs no call of its own; `stop_repeats` streams it


CANDIDATES: dict[str, Candidate] = {
    "greedy": Candidate(),
    "greedy-cut": Candidate(cut="repeat"),
    "rp32": Candidate(sampling={"repeat_penalty": 1.1, "repeat_last_n": 32}),
    "rp32-cut": Candidate(sampling={"repeat_penalty": 1.1, "repeat_last_n": 32}, cut="repeat"),
    "hintfirst": Candidate(with_hint=HINT_FIRST),
    "hintfirst-rp24": Candidate(with_hint=HINT_FIRST, sampling={"repeat_penalty": 1.1, "repeat_last_n": 24}),
    "hintfirst-rp24-cut": Candidate(
        with_hint=HINT_FIRST, sampling={"repeat_penalty": 1.1, "repeat_last_n": 24}, cut="repeat"
    ),
    "greedy-64": Candidate(max_tokens=64),
    "0shot": Candidate(shots=0),
    "0shot-cut": Candidate(shots=0, cut="repeat"),
    "0shot-rp32": Candidate(shots=0, sampling={"repeat_penalty": 1.1, "repeat_last_n": 32}),
    "0shot-rp32-cut": Candidate(shots=0, sampling={"repeat_penalty": 1.1, "repeat_last_n": 32}, cut="repeat"),
    # zero-shot, stopped where a base model goes on with a question-and-answer format of its own
    "0shot-q": Candidate(shots=0, stop=QA_STOPS),
    "0shot-q-cut": Candidate(shots=0, stop=QA_STOPS, cut="repeat"),
    "0shot-q-cut-nonempty": Candidate(shots=0, stop=QA_STOPS, cut="repeat", sampling={"grammar": NONEMPTY_GRAMMAR}),
    "0shot-s-cut": Candidate(SUMMARY_WITH_HINT, SUMMARY_PLAIN, shots=0, stop=QA_STOPS + ("\nSummary:",), cut="repeat"),
    "0shot-q-rp32": Candidate(shots=0, stop=QA_STOPS, sampling={"repeat_penalty": 1.1, "repeat_last_n": 32}),
    "0shot-q-rp32-cut": Candidate(
        shots=0, stop=QA_STOPS, sampling={"repeat_penalty": 1.1, "repeat_last_n": 32}, cut="repeat"
    ),
    "0shot-q-hf-cut": Candidate(with_hint=HINT_FIRST, shots=0, stop=QA_STOPS, cut="repeat"),
    "0shot-q-hf-rp16-cut": Candidate(
        with_hint=HINT_FIRST,
        shots=0,
        stop=QA_STOPS,
        cut="repeat",
        sampling={"repeat_penalty": 1.1, "repeat_last_n": 16},
    ),
    "0shot-q-hf-rp16-13-cut": Candidate(
        with_hint=HINT_FIRST,
        shots=0,
        stop=QA_STOPS,
        cut="repeat",
        sampling={"repeat_penalty": 1.3, "repeat_last_n": 16},
    ),
    "hf-rp16-cut": Candidate(with_hint=HINT_FIRST, cut="repeat", sampling={"repeat_penalty": 1.1, "repeat_last_n": 16}),
    "kw-cut": Candidate(with_hint=KEYWORDS, cut="repeat"),
    # DRY penalises a token that extends a run already in its window past the allowed length: at 6, a hint
    # phrase (at most 4 words) copied into the answer is never penalised, a sentence said again or the hint's
    # whole list copied is.
    "dry6-cut": Candidate(cut="repeat", sampling=DRY6),
    "0shot-q-dry6-cut": Candidate(shots=0, stop=QA_STOPS, cut="repeat", sampling=DRY6),
    "2shot": Candidate(shots=2),
    "2shot-cut": Candidate(shots=2, cut="repeat"),
    # XSum (--task xsum --data ../shared/data/xsum --split dev): its one-sentence templates, 48 tokens
    "xsum-1shot": Candidate(XSUM_WITH_HINT, XSUM_PLAIN, XSUM_STOP, max_tokens=48),  # xsum.toml's before 65ebf35
    "xsum-1shot-cut": Candidate(XSUM_WITH_HINT, XSUM_PLAIN, XSUM_STOP, max_tokens=48, cut="repeat"),
    "xsum-0shot-q-cut": Candidate(
        XSUM_WITH_HINT, XSUM_PLAIN, XSUM_STOP, max_tokens=48, shots=0, stop=QA_STOPS, cut="repeat"
    ),
}


def make_task(base: Task, c: Candidate) -> Task:
    return replace(
        base,
        with_hint=PromptTemplate(c.with_hint, "candidate with_hint"),
        plain=PromptTemplate(c.plain, "candidate plain"),
        max_tokens=c.max_tokens,
        sampling=dict(c.sampling),
        stop=c.base_stop + c.stop,
        stop_repeats=False,  # `cut` derives it from the whole answer
        _shot_blocks={},
    )


def hints_for(task: Task, examples: list[Example], train: list[Example]) -> dict[str, list[str | None]]:
    tfidf = TfidfPolicy.fit([e.input for e in train], separator=task.separator).generate([e.input for e in examples])
    return {"none": [None] * len(examples), "tfidf": tfidf, "oracle": [task.pseudo_label(e) for e in examples]}


async def run_candidate(
    client: AsyncLLMClient,
    name: str,
    c: Candidate,
    base: Task,
    examples: list[Example],
    shots: list[Example],
    hints: dict[str, list[str | None]],
    out: Path,
) -> list[dict]:
    task = make_task(base, c)
    keys = [(cond, i) for i in range(len(examples)) for cond in CONDITIONS]
    requests = [task.request(examples[i], hints[cond][i], shots[: c.shots]) for cond, i in keys]
    sent_before = client.usage.requests
    start = time.perf_counter()
    answers = await client.complete_many(requests, desc=name)
    seconds = time.perf_counter() - start
    rows = []
    for (cond, i), a in zip(keys, answers):
        if isinstance(a, BaseException):
            raise a
        text = cut_repeats(a.text) if c.cut == "repeat" else a.text
        # A cut answer's tokens: its share of the generated text's (streaming would stop the generation there).
        tokens = a.completion_tokens * len(text) / max(1, len(a.text))
        rows.append(
            {
                "candidate": name,
                "cond": cond,
                "id": examples[i].id,
                "text": text,
                "tokens": tokens,
                "at_cap": a.finish_reason == "length" and text == a.text,
                "cached": a.cached,
                "score": task.score(text, examples[i])[task.metric],
            }
        )
    sent = client.usage.requests - sent_before
    for r in rows:
        r["calls_per_s"] = sent / seconds if sent else None
    (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


async def again(
    client: AsyncLLMClient,
    name: str,
    c: Candidate,
    base: Task,
    examples: list[Example],
    shots: list[Example],
    hints: dict[str, list[str | None]],
    n: int,
) -> tuple[int, int]:
    """(identical, sent): the first n prompts of each condition, cached answers against a fresh uncached ask."""
    task = make_task(base, c)
    keys = [(cond, i) for cond in CONDITIONS for i in range(min(n, len(examples)))]
    keys = keys[::-1]  # another order, each prompt beside other neighbours than the first time
    requests = [task.request(examples[i], hints[cond][i], shots[: c.shots]) for cond, i in keys]
    cached = await client.complete_many(requests)
    uncached = fresh(client)
    try:
        answers = await uncached.complete_many(requests, desc=f"{name} again")
    finally:
        await uncached.aclose()
    same = sum(a.text == b.text for a, b in zip(cached, answers))
    return same, len(requests)


def fresh(client: AsyncLLMClient) -> AsyncLLMClient:
    """A client on the same backend with no cache."""
    pool = getattr(client, "pool", None)
    if pool is None:
        return AsyncLLMClient(client.config, None)
    from dsp.llm.embedded import EmbeddedClient

    return EmbeddedClient(client.config, None, pool)


def table(out: Path, names: list[str]) -> str:
    head = (
        "| candidate | none | TF-IDF | oracle | room (oracle - TF-IDF) | gap (oracle - none) | answer tokens | "
        "at cap | calls/s | again identical |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    extra = json.loads((out / "again.json").read_text()) if (out / "again.json").exists() else {}
    for name in names:
        path = out / f"{name}.jsonl"
        if not path.exists():
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        by = {cond: {r["id"]: r for r in rows if r["cond"] == cond} for cond in CONDITIONS}
        ids = [i for i in by["none"] if all(i in by[c] for c in CONDITIONS)]
        mean = {c: mean_ci([by[c][i]["score"] for i in ids])[0] for c in CONDITIONS}
        room = mean_ci([by["oracle"][i]["score"] - by["tfidf"][i]["score"] for i in ids])
        gap = mean_ci([by["oracle"][i]["score"] - by["none"][i]["score"] for i in ids])
        tokens = sum(r["tokens"] for r in rows) / len(rows)
        cap = sum(r["at_cap"] for r in rows) / len(rows)
        rate = rows[0]["calls_per_s"]
        same = extra.get(name)
        lines.append(
            f"| {name} (n={len(ids)}) | {mean['none']:.2f} | {mean['tfidf']:.2f} | {mean['oracle']:.2f} | "
            f"{room[0]:+.2f} ± {room[1]:.2f} | {gap[0]:+.2f} ± {gap[1]:.2f} | {tokens:.0f} | {cap:.0%} | "
            f"{f'{rate:.3f}' if rate else 'cached'} | {f'{same[0]}/{same[1]}' if same else '-'} |"
        )
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace, client: AsyncLLMClient) -> None:
    out = Path(args.out)
    loaded = load_task(args.task)
    base = loaded.task
    fields = dict(input_field=loaded.data.input_field, target_field=loaded.data.target_field)
    examples = load_examples(args.data, split=args.split, limit=args.limit, **fields)
    train = load_examples(args.data, split=args.train_split, **fields)
    hints = hints_for(base, examples, train)
    names = args.candidates.split(",")
    again_path = out / "again.json"
    repeats = json.loads(again_path.read_text()) if again_path.exists() else {}
    for name in names:
        c = CANDIDATES[name]
        await run_candidate(client, name, c, base, examples, train, hints, out)
        if args.again:
            repeats[name] = await again(client, name, c, base, examples, train, hints, args.again)
            again_path.write_text(json.dumps(repeats))
        print(table(out, [name]).splitlines()[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cnndm"))
    ap.add_argument("--task", default="cnndm", help="the task whose pseudo-labels and fields are used")
    ap.add_argument("--split", default="validation")
    ap.add_argument(
        "--train-split",
        default="train",
        help="where the shots and TF-IDF's IDF come from",
    )
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--candidates", default="greedy")
    ap.add_argument("--again", type=int, default=0, help="send the first N prompts per condition again, uncached")
    ap.add_argument("--report", action="store_true", help="print the table from OUT's files and stop")
    ap.add_argument("--base-url", default=None, help="another OpenAI-compatible server (default: the embedded LLM)")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        print(table(out, [p.stem for p in sorted(out.glob("*.jsonl"))]), end="")
        return
    from dsp.llm.session import run_with_llm

    # The embedded LLM as every command gets it (or --base-url/--model's server); answers cached in OUT.
    config = LLMConfig(base_url=args.base_url, model=args.model, concurrency=8)
    run_with_llm(config, out / "cache.sqlite", lambda client: main_async(args, client))
    print(table(out, args.candidates.split(",")), end="")
    (out / "table.md").write_text(table(out, [p.stem for p in sorted(out.glob("*.jsonl"))]))


if __name__ == "__main__":
    main()
