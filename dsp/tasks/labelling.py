"""Keyword hints written with the LLM's help (`dsp sft --labels llm`), for inputs with no reference.

The LLM reads each input in a labelling prompt (`prompts/labelling/keywords.txt`, or a task's own)
and lists key phrases; the phrases that occur in the input become its label, joined by the task's
separator. Every call goes through the client: cached (a re-run pays nothing), capped
(`--max-llm-calls`), retried. This is `Task.llm_labels`' default; a kind whose hints are not key
phrases overrides it (reasoning: a trigger search).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from dsp.data import Example
from dsp.errors import BudgetExceeded, DSPError
from dsp.llm.types import LLMRequest
from dsp.tasks.stopwords import STOPWORDS
from dsp.tasks.template import PromptTemplate

if TYPE_CHECKING:
    from dsp.llm.client import AsyncLLMClient

DEFAULT_TEMPLATE = "labelling/keywords"


_WORD = re.compile(r"\w+(?:[-'’.]\w+)*")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def parse_phrases(answer: str, source: str, separator: str = "; ", max_phrases: int = 20) -> str:
    """Phrases of an LLM answer (split at ; , or new lines) that occur in `source` as whole words,
    not only stop words, deduplicated, in answer order."""
    text = f" {' '.join(_words(source))} "
    out: list[str] = []
    for raw in re.split(r"[;\n,]|\s-\s", answer):
        words = _words(raw)
        key = " ".join(words)
        if not words or all(w in STOPWORDS for w in words) or f" {key} " not in text or key in (p.lower() for p in out):
            continue
        out.append(" ".join(raw.strip(" .:-*\"'").split()))
    return separator.join(out[:max_phrases])


async def llm_labels(
    examples: Sequence[Example],
    client: AsyncLLMClient,
    *,
    separator: str = "; ",
    template: str = DEFAULT_TEMPLATE,
    max_input_words: int = 400,
    max_tokens: int = 64,
) -> dict[str, str]:
    """{example.where: label} (file:line: unique across splits, unlike ids). Raises BudgetExceeded at the cap (answers so far stay in the cache)."""
    prompt = PromptTemplate.load(template)
    inputs = [" ".join(e.input.split()[:max_input_words]) for e in examples]
    requests = [
        LLMRequest(
            prompt=prompt.fill(text, None, None),
            messages=prompt.messages(text, None),
            max_tokens=max_tokens,
            stop=prompt.answer_stops,
        )
        for text in inputs
    ]
    answers = await client.collect(requests, desc="labels")
    labels = {
        e.where: parse_phrases(a.text, e.input, separator)
        for e, a in zip(examples, answers)
        if not isinstance(a, DSPError)
    }
    stopped = next((a for a in answers if isinstance(a, BudgetExceeded)), None)
    if stopped is not None:
        raise BudgetExceeded(f"{stopped} (labelled {len(labels)} of {len(examples)} inputs)")
    if not labels and answers:
        raise answers[0]  # every call failed for good: the first one's error says why
    return labels
