"""Batch hinting (`dsp hint --input-file in.jsonl --output out.jsonl`): the policy's hints for a whole file,
batched through the policy, optionally with the steered LLM answers, resumable.

Each finished row is written and flushed at once, so a re-run (after a kill, a cap, a failed call) reads
the output's ids and does only the rest. An id the input holds more than once is hinted once per record:
the re-run counts that id's rows, so its first k records are the ones done. With an LLM the next batch's
hints are computed while the current batch's calls are in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from tqdm.auto import tqdm

from dsp.data import Example
from dsp.errors import DSPError
from dsp.llm.client import AsyncLLMClient
from dsp.policy.base import HintPolicy
from dsp.roundtrip import ask
from dsp.tasks.base import Task

log = logging.getLogger(__name__)


@dataclass
class HintFileResult:
    written: int
    skipped: int
    """Inputs whose rows the output already had."""


def written_ids(out: Path) -> Counter[str]:
    """How many rows of each id the output already holds. A last line cut short by a kill is removed, so it
    is done again."""
    if not out.exists():
        return Counter()
    data = out.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with out.open("r+b") as f:
            f.truncate(end)
    ids: Counter[str] = Counter()
    for lineno, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids[str(json.loads(line)["id"])] += 1
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DSPError(
                f"{out}:{lineno}: not a row this command wrote (no JSON with an 'id'); "
                "move the file away or pass another --output"
            ) from None
    return ids


def warn_repeats(examples: Sequence[Example]) -> None:
    """One warning line naming the first repeated id (and how many more there are)."""
    first: dict[str, str] = {}
    repeats = []
    for e in examples:
        if e.id in first:
            repeats.append(f"{e.where}: id '{e.id}' again (first at {first[e.id]})")
        first.setdefault(e.id, e.where)
    if repeats:
        more = f"; {len(repeats) - 1} more repeated" if len(repeats) > 1 else ""
        log.warning("%s%s: each record is hinted, its rows share the id", repeats[0], more)


def not_written(examples: Sequence[Example], done: Counter[str]) -> list[Example]:
    """The examples still to do: of an id's records, the first `done[id]` are in the output already."""
    seen: Counter[str] = Counter()
    todo = []
    for e in examples:
        seen[e.id] += 1
        if seen[e.id] > done[e.id]:
            todo.append(e)
    return todo


async def hint_file(
    policy: HintPolicy,
    task: Task,
    examples: Sequence[Example],
    out: Path,
    *,
    batch_size: int = 16,
    client: AsyncLLMClient | None = None,
    shots: Sequence[Example] = (),
    input_field: str = "article",
    target_field: str = "highlights",
    progress: bool = True,
) -> HintFileResult:
    """Write one JSON line per example: id, input, hint (and target, prompt and LLM output where there are)."""
    if batch_size < 1:
        raise DSPError(f"--batch-size must be positive, not {batch_size}")
    warn_repeats(examples)
    todo = not_written(examples, written_ids(out))
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    bar = tqdm(total=len(todo), desc="hints", unit="input", disable=not progress)
    failure: BaseException | None = None
    written = 0

    def hints_of(batch: list[Example]) -> list[str]:
        return policy.generate([e.input for e in batch], batch_size=len(batch))

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("a", encoding="utf-8") as f:
            next_hints = asyncio.create_task(asyncio.to_thread(hints_of, batches[0])) if batches else None
            for i, batch in enumerate(batches):
                hints = await next_hints
                calls = asyncio.create_task(_answers(client, task, batch, hints, shots))
                if i + 1 < len(batches):  # the policy works on the next batch while the LLM answers this one
                    next_hints = asyncio.create_task(asyncio.to_thread(hints_of, batches[i + 1]))
                prompts, results = await calls
                done, failure = _write_rows(
                    f, batch, hints, prompts, results, input_field, target_field, with_output=client is not None
                )
                written += done
                bar.update(done)
                if failure is not None:
                    if i + 1 < len(batches):
                        next_hints.cancel()
                    break
    finally:
        bar.close()
    if failure is not None:
        raise failure
    return HintFileResult(written=written, skipped=len(examples) - len(todo))


async def _answers(
    client: AsyncLLMClient | None, task: Task, batch: list[Example], hints: list[str], shots: Sequence[Example]
) -> tuple[list, list]:
    """(the prompts, the LLM's answers) of one batch; Nones without an LLM."""
    if client is None:
        return [None] * len(batch), [None] * len(batch)
    try:
        got = await ask(client, task, batch, hints, shots, desc=None)
    except DSPError:
        raise
    except Exception as e:  # not an LLM failure: said in one line, the rows written so far kept
        raise DSPError(f"LLM call failed: {type(e).__name__}") from None
    return [r.prompt for (r,) in got.requests], [a for (a,) in got.rows]


def _write_rows(
    f: IO[str],
    batch: list[Example],
    hints: list[str],
    prompts: list,
    results: list,
    input_field: str,
    target_field: str,
    with_output: bool,
) -> tuple[int, DSPError | None]:
    """One line per example of a batch whose LLM call did not fail (a re-run asks again for those); returns how
    many were written and the first failure."""
    written, failure = 0, None
    for e, h, p, r in zip(batch, hints, prompts, results):
        if isinstance(r, DSPError):
            failure = failure or r
            continue
        row = {"id": e.id, input_field: e.input, "hint": h}
        if e.target:
            row[target_field] = e.target
        if with_output:
            row.update(prompt=p, output=r.text.strip())
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        written += 1
    return written, failure
