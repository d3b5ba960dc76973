"""The round trip every command makes: (input, hint) -> the task's LLM request -> answer -> task score.

The RL reward, `dsp eval`, LLM labelling and batch `dsp hint` all go through here, so an answer
that failed for good, the budget stop and a missing score are handled one way:

- an answer that failed for good (after retries) is kept as its `LLMError`, in its place;
- reaching `--max-llm-calls`/`--max-cost` is `Answers.stopped`, the one `BudgetExceeded` (callers
  that keep partial work read it; `round_trip` raises it);
- a score that could not be computed is NaN, never 0;
- any other exception from a call is a bug or a cancellation and is raised at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from dsp.data import Example
from dsp.errors import BudgetExceeded, DSPError, LLMError

if TYPE_CHECKING:
    from dsp.llm.client import AsyncLLMClient
    from dsp.llm.types import LLMRequest, LLMResult
    from dsp.tasks.base import Task


@dataclass
class Answers:
    """The LLM's answers to n requests, `samples` per (example, hint): `rows[i][s]`, asked by `requests[i][s]`."""

    rows: list[list[LLMResult | DSPError]]
    requests: list[list[LLMRequest]]

    @property
    def stopped(self) -> BudgetExceeded | None:
        """The budget stop, if the cap was reached during these calls (the answers after it are missing)."""
        return next((a for row in self.rows for a in row if isinstance(a, BudgetExceeded)), None)

    @property
    def failures(self) -> list[LLMError]:
        """Calls that failed for good (not counting the ones the budget stop left unsent)."""
        return [a for row in self.rows for a in row if isinstance(a, LLMError)]


async def ask(
    client: AsyncLLMClient,
    task: Task,
    examples: Sequence[Example],
    hints: Sequence[str | None],
    shots: Sequence[Example] = (),
    *,
    samples: int = 1,
    temperature: float = 0.0,
    desc: str | None = "llm",
) -> Answers:
    """The LLM's answers for each (example, hint): `samples` requests each (`hint=None`: the plain prompt)."""
    if len(examples) != len(hints):
        raise ValueError(f"{len(examples)} examples but {len(hints)} hints")
    requests = [
        task.request(e, h, shots, temperature=temperature, sample_index=s)
        for e, h in zip(examples, hints)
        for s in range(samples)
    ]
    flat = await client.collect(requests, desc)
    rows = range(len(examples))
    return Answers(
        [flat[i * samples : (i + 1) * samples] for i in rows], [requests[i * samples : (i + 1) * samples] for i in rows]
    )


def mean_scores(task: Task, examples: Sequence[Example], answers: Answers) -> list[float]:
    """The task metric per example, averaged over its answers that came back; NaN where none did."""
    out = []
    for example, row in zip(examples, answers.rows):
        values = [task.score(a.text, example)[task.metric] for a in row if not isinstance(a, BaseException)]
        out.append(sum(values) / len(values) if values else math.nan)
    return out


async def round_trip(
    client: AsyncLLMClient,
    task: Task,
    examples: Sequence[Example],
    hints: Sequence[str | None],
    shots: Sequence[Example] = (),
    **options: Any,
) -> list[float]:
    """The task score of each hint (mean of `samples` answers; NaN if none came); `options` as `ask`'s (samples,
    temperature, desc). Raises the budget stop."""
    answers = await ask(client, task, examples, hints, shots, **options)
    if answers.stopped is not None:
        raise answers.stopped  # the answers so far are in the cache: a resumed run pays nothing for them
    return mean_scores(task, examples, answers)
