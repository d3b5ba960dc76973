"""Arithmetic word problems (MultiArith, GSM8K) with chain-of-thought triggers as hints.

The hint is an instance-specific trigger that opens the answer ("Q: ...\\nA: Let's first find the
total, then divide it equally."); the LLM reasons on from it; the score is exact match (x100) of
the final number of its answer with the reference (a number, or GSM8K's "... #### 18").

Triggers have no reference to be found in: the pseudo-label of a question is the first trigger of
`prompts/reasoning/triggers.txt` with which the LLM answers it correctly (`dsp sft --labels llm`
searches them, cached and capped), or the zero-shot-CoT trigger when none does.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Sequence

from dsp.data import Example
from dsp.errors import BudgetExceeded
from dsp.metrics import exact_match_number
from dsp.roundtrip import ask, mean_scores
from dsp.tasks.base import Task

if TYPE_CHECKING:
    from dsp.llm.client import AsyncLLMClient

DEFAULT_TRIGGER = "Let's think step by step."


def load_triggers(name: str = "reasoning/triggers") -> list[str]:
    text = resources.files("dsp.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass
class ReasoningTask(Task):
    """Triggers as hints, exact match of the final number as the score (see the module doc)."""

    kind = "reasoning"
    labeller = "trigger_search"
    metrics = ("exact_match",)
    extractive_hints = False  # a trigger is not a set of input words
    name: str = "multiarith"
    separator: str = " "
    max_input_words: int = 300
    shot_input_words: int = 300
    shots: int = 0  # zero-shot chain of thought (Kojima et al.), as the paper ran it: a shot
    # whose answer is a bare number teaches a small LLM to skip the reasoning the trigger opens
    max_tokens: int = 128
    stop: tuple[str, ...] = ("\nQ:", "\n\n")
    metric: str = "exact_match"

    def pseudo_label(self, example: Example) -> str:
        trigger = example.fields().get("trigger")
        return trigger if isinstance(trigger, str) and trigger.strip() else DEFAULT_TRIGGER

    def score(self, output: str, example: Example) -> dict[str, float]:
        return {"exact_match": 100.0 * exact_match_number(output, example.target)}

    async def llm_labels(self, examples: Sequence[Example], client: AsyncLLMClient, template: str) -> dict[str, str]:
        """{example.where: the first trigger of `prompts/reasoning/triggers.txt` with which the LLM answers
        correctly, else the zero-shot-CoT one} (`template` is the keyword labeller's, unused here).

        Triggers are tried in order, one round each, and a question leaves the search at its first right
        answer: a strong LLM that solves most questions with the first trigger costs about one call a
        question, a weak one up to len(triggers). Every (question, trigger) pair is one cached call, so a
        re-run costs nothing.
        """
        return await trigger_labels(examples, client, self, load_triggers())


async def trigger_labels(
    examples: Sequence[Example], client: AsyncLLMClient, task: ReasoningTask, triggers: Sequence[str]
) -> dict[str, str]:
    """`ReasoningTask.llm_labels` with the triggers given."""
    found: dict[str, str] = {}
    pending = list(examples)
    for j, trigger in enumerate(triggers):
        if not pending:
            break
        answers = await ask(client, task, pending, [trigger] * len(pending), desc=f"trigger {j + 1}/{len(triggers)}")
        if answers.stopped is not None:
            raise BudgetExceeded(f"{answers.stopped} (labelled {len(found)} of {len(examples)} inputs)")
        unsolved = []
        for e, score in zip(pending, mean_scores(task, pending, answers)):
            if score > 0:  # NaN (failed for good) is not > 0: the question stays unsolved
                found[e.where] = trigger
            else:
                unsolved.append(e)
        pending = unsolved
    return {e.where: found.get(e.where, DEFAULT_TRIGGER) for e in examples}
