"""Hint labels for SFT when there are no references: the black-box LLM writes them (`dsp sft --labels llm`).

The LLM reads each input in a labelling prompt (`prompts/labelling/keywords.txt`, or a task's own)
and lists key phrases; the phrases that occur in the input become its label, joined by the task's
separator. Every call goes through the client: cached (a re-run pays nothing), capped
(`--max-llm-calls`), retried. Inputs need no reference at all.
"""

from __future__ import annotations

import re
from typing import Sequence

from dsp.data import Example
from dsp.errors import BudgetExceeded, DSPError, LLMError
from dsp.llm.client import AsyncLLMClient, LLMRequest
from dsp.roundtrip import ask, collect, mean_scores
from dsp.tasks.base import PromptTemplate
from dsp.tasks.stopwords import STOPWORDS
from dsp.train import accel

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


async def llm_labels(examples: Sequence[Example], client: AsyncLLMClient, *, separator: str = "; ",
                     template: str = DEFAULT_TEMPLATE, max_input_words: int = 400, max_tokens: int = 64) -> dict[str, str]:
    """{example.where: label} (file:line: unique across splits, unlike ids). Raises BudgetExceeded at the cap (answers so far stay in the cache)."""
    prompt = PromptTemplate.load(template)
    inputs = [" ".join(e.input.split()[:max_input_words]) for e in examples]
    requests = [LLMRequest(prompt=prompt.fill(text, None, None), messages=prompt.messages(text, None),
                           max_tokens=max_tokens, stop=prompt.answer_stops) for text in inputs]
    answers = await collect(client, requests, desc="labels")
    labels = {e.where: parse_phrases(a.text, e.input, separator) for e, a in zip(examples, answers)
              if not isinstance(a, DSPError)}
    stopped = next((a for a in answers if isinstance(a, BudgetExceeded)), None)
    if stopped is not None:
        raise BudgetExceeded(f"{stopped} (labelled {len(labels)} of {len(examples)} inputs)")
    if not labels and answers:
        raise answers[0]  # every call failed for good: the first one's error says why
    return labels


async def trigger_labels(examples: Sequence[Example], client: AsyncLLMClient, task, triggers: Sequence[str]
                         ) -> dict[str, str]:
    """{example.where: the first trigger with which the LLM answers correctly, else the zero-shot-CoT one}.

    Triggers are tried in order, one round each, and a question leaves the search at its first right
    answer: a strong LLM that solves most questions with the first trigger costs about one call a
    question, a weak one up to len(triggers). Every (question, trigger) pair is one cached call, so a
    re-run costs nothing.
    """
    from dsp.tasks.reasoning import DEFAULT_TRIGGER

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


async def label_for_sft(cfg, client: AsyncLLMClient, task) -> dict[str, str]:
    """LLM labels for every training and dev input an SFT run with `cfg` will use: key phrases for
    keyword tasks, the searched trigger for reasoning tasks."""
    from dsp.tasks.reasoning import ReasoningTask, load_triggers
    from dsp.train.sft import load_train_dev

    train, dev = load_train_dev(cfg)
    unique = list({e.where: e for e in train + dev}.values())
    state = accel.process_state(cfg.device)
    mine = unique[state.process_index :: state.num_processes]  # under accelerate launch each input is labelled once
    error: DSPError | None = None
    try:
        if isinstance(task, ReasoningTask):
            labels = await trigger_labels(mine, client, task, load_triggers())
        else:
            labels = await llm_labels(mine, client, separator=task.separator, template=cfg.label_template)
    except DSPError as e:  # every process must learn of it before the gather below, or the others would wait forever
        if state.num_processes == 1:
            raise
        error, labels = e, {}
    errors = accel.gather(state, [type(error).__name__ if error is not None else ""])
    if error is not None:
        raise error
    if "BudgetExceeded" in errors:
        raise BudgetExceeded("another process reached its share of --max-llm-calls/--max-cost while labelling")
    if any(errors):
        raise LLMError("another process's LLM labelling failed for good (its error says why)")
    return dict(accel.gather(state, list(labels.items())))
