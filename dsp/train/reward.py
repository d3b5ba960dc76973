"""Rewards for RL: the LLM's output for a hinted prompt, scored by the task metric.

A reward is an async callable `(examples, hints) -> list[float]`, one value per hint; a value
that could not be computed is NaN (the trainer gives it zero advantage and counts it). It also
has `metric(examples, hints)`: the plain task score, for dev evaluation. Tests pass cheap
deterministic rewards with the same two methods.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

from dsp.data import Example
from dsp.llm.client import AsyncLLMClient
from dsp.metrics import hint_hits
from dsp.roundtrip import round_trip
from dsp.tasks import Task


class Reward(Protocol):
    async def __call__(self, examples: Sequence[Example], hints: Sequence[str]) -> list[float]: ...

    async def metric(self, examples: Sequence[Example], hints: Sequence[str]) -> list[float]: ...


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


class LLMReward:
    """Mean task score of `samples` LLM answers per hint; optionally minus the no-hint score.

    The no-hint prompt of an input is the same request every time it comes up, so after the
    first iteration that sees an input it is served by the cache.
    """

    def __init__(
        self,
        client: AsyncLLMClient,
        task: Task,
        shots: Sequence[Example] = (),
        *,
        samples: int = 1,
        temperature: float = 0.0,
        baseline: str = "none",
    ):
        if baseline not in ("none", "no_hint"):
            raise ValueError(f"baseline must be 'none' or 'no_hint', not {baseline!r}")
        self.client, self.task, self.shots = client, task, list(shots)
        self.samples, self.temperature, self.baseline = samples, temperature, baseline
        self.missing = 0  # rewards that could not be computed, over the run

    async def _scores(
        self, examples: Sequence[Example], hints: Sequence[str | None], samples: int, temperature: float
    ) -> list[float]:
        return await round_trip(
            self.client, self.task, examples, hints, self.shots, samples=samples, temperature=temperature
        )

    async def __call__(self, examples: Sequence[Example], hints: Sequence[str]) -> list[float]:
        scores = await self._scores(examples, hints, self.samples, self.temperature)
        if self.baseline == "no_hint":
            unique = list({e.id: e for e in examples}.values())
            base = dict(
                zip(
                    (e.id for e in unique),
                    await self._scores(unique, [None] * len(unique), self.samples, self.temperature),
                )
            )
            scores = [s - base[e.id] for s, e in zip(scores, examples)]  # NaN stays NaN
        self.missing += sum(math.isnan(s) for s in scores)
        return scores

    async def metric(self, examples: Sequence[Example], hints: Sequence[str]) -> list[float]:
        """Greedy, one answer per hint: the number `dsp eval` would report."""
        return await self._scores(examples, hints, 1, 0.0)


class HintHitShaping:
    """The DSP paper's reward shaping: a reward plus `coef` x its hint-hit terms (see `metrics.hint_hits`).

    The term is summed over the hint's phrases and added to the rollout's reward, so PPO, like
    GRPO and RLOO, sees it at the end of the hint. A missing reward stays missing. The dev metric
    is the plain reward's: shaping steers training, it is not what eval reports.
    """

    def __init__(self, reward: Reward, coef: float, separator: str):
        self.reward, self.coef, self.separator = reward, coef, separator
        self.last_metrics: dict[str, float] = {}

    @property
    def missing(self) -> int:
        return getattr(self.reward, "missing", 0)

    async def __call__(self, examples: Sequence[Example], hints: Sequence[str]) -> list[float]:
        base = await self.reward(examples, hints)
        terms = [hint_hits(h, e.target, self.separator) for e, h in zip(examples, hints)]
        phrases = [t for ts in terms for t in ts]
        ok = [b for b in base if not math.isnan(b)]
        self.last_metrics = {
            "charts/hint_hit_rate": sum(t > 0 for t in phrases) / len(phrases) if phrases else math.nan,
            "charts/llm_reward": _mean(ok),
        }
        return [b + self.coef * sum(t) for b, t in zip(base, terms)]

    async def metric(self, examples: Sequence[Example], hints: Sequence[str]) -> list[float]:
        return await self.reward.metric(examples, hints)
