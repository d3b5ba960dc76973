"""Hint labels for SFT when there are no references: the black-box LLM writes them (`dsp sft --labels llm`).

How is the task's (`Task.llm_labels`: key phrases by default, a trigger search for reasoning); this
module splits the inputs over the processes of an `accelerate launch` job, so each is labelled once,
and gathers the labels. Inputs need no reference at all.
"""

from __future__ import annotations

from dsp.errors import BudgetExceeded, DSPError, LLMError
from dsp.llm.client import AsyncLLMClient
from dsp.train import accel


async def label_for_sft(cfg, client: AsyncLLMClient, task) -> dict[str, str]:
    """LLM labels for every training and dev input an SFT run with `cfg` will use: key phrases for
    keyword tasks, the searched trigger for reasoning tasks."""
    from dsp.train.sft import load_train_dev

    train, dev = load_train_dev(cfg)
    unique = list({e.where: e for e in train + dev}.values())
    state = accel.process_state(cfg.device)
    mine = unique[state.process_index :: state.num_processes]  # under accelerate launch each input is labelled once
    error: DSPError | None = None
    try:
        labels = await task.llm_labels(mine, client, cfg.label_template)
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
