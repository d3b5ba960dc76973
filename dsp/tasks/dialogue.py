"""Task-oriented dialogue (MultiWOZ 2.1, ConvLab format): the hint is the system turn's dialogue acts.

One example per system turn: the input is the dialogue so far (the last `context_turns`
utterances, one per line), the target is the system's response, and the record carries its
acts and the slot values it informs. The hint reads `[hotel] [inform] area stars [request]
price`; the LLM writes the response from the context and the hint; the score is the mean of
BLEU against the reference response and the share of its informed slot values the response
contains (both x100).

The records come from `dsp.multiwoz` (a fixed 80/20 train/dev split of the public validation file).
"""

from __future__ import annotations

from dataclasses import dataclass

from dsp.data import Example
from dsp.errors import InputError
from dsp.metrics import bleu, slot_recall
from dsp.tasks.base import Task
from dsp.tasks.template import PromptTemplate


@dataclass
class DialogueTask(Task):
    """Dialogue acts as the hint; BLEU and slot recall as the score (see the module doc)."""

    kind = "dialogue"
    labeller = "dialogue_acts"
    metrics = ("dialogue_score", "bleu", "slot_recall")
    extractive_hints = False  # act labels are not words of the context: a seq2seq policy must write them
    name: str = "multiwoz"
    separator: str = " "
    max_input_words: int = 200
    shot_input_words: int = 120
    max_tokens: int = 64
    stop: tuple[str, ...] = ("\n",)
    metric: str = "dialogue_score"

    def pseudo_label(self, example: Example) -> str:
        acts = example.fields().get("acts")
        if not isinstance(acts, str):
            raise InputError(example.where, None, "acts", "missing: dialogue examples carry their acts (MultiWOZ zip)")
        return acts

    def _block(
        self, template: PromptTemplate, example: Example, hint: str | None, words: int, target: str | None
    ) -> str:
        # keep the turns on their lines and the most recent words (a context is read from its end)
        lines, kept = example.input.splitlines(), []
        budget = words
        for line in reversed(lines):
            w = line.split()
            if budget <= 0:
                break
            kept.append(" ".join(w[-budget:]))
            budget -= len(w)
        return template.fill("\n".join(reversed(kept)), hint, target)

    def score(self, output: str, example: Example) -> dict[str, float]:
        b = bleu(output, example.target)
        r = 100.0 * slot_recall(output, example.fields().get("values") or [])
        return {"bleu": b, "slot_recall": r, "dialogue_score": (b + r) / 2}
