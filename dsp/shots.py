"""Few-shot examples that are never an example being evaluated: its own reference in its prompt would
inflate its score. With one --data file every split is that file, so the first examples of the "train"
split are the first evaluated ones too; the shots then come from outside the evaluated examples, and
the command says so in one line.

An example is "the same" when it is the same record (file and line), or, for an input that comes from no
file (`dsp hint TEXT`, `--file`), one with the same text, spacing aside. Records that only read alike are
different examples (dialogue turns of one template; an article a dataset holds in two splits).
"""

from __future__ import annotations

import logging
from typing import Sequence

from dsp.data import Example, load_examples
from dsp.errors import DSPError

log = logging.getLogger(__name__)


class NoShotsLeft(DSPError):
    """Every example the shots could come from is one of the evaluated examples."""


def _text(s: str) -> str:
    return " ".join(s.split())


def overlaps(examples: Sequence[Example]):
    """A test: is an example one of `examples` (see the module doc)?"""
    wheres = {e.where for e in examples if e.where}
    texts = {_text(e.input) for e in examples if not e.where}
    return lambda e: e.where in wheres or _text(e.input) in texts


def draw_shots(
    source: str | None, n: int, evaluated: Sequence[Example], *, split: str = "train", **load_kw
) -> list[Example]:
    """The first n examples of `source`'s `split` that are not evaluated (fewer if the split is shorter).
    Raises NoShotsLeft when evaluated examples take the places of the n."""
    if not source or n <= 0:
        return []
    pool = load_examples(source, split=split, limit=n + len(evaluated), **load_kw)
    is_evaluated = overlaps(evaluated)
    shots = [e for e in pool if not is_evaluated(e)][:n]
    if len(shots) < min(n, len(pool)):
        raise NoShotsLeft(
            f"{source}: no {n} few-shot example(s) in split '{split}' besides the {len(evaluated)} "
            "evaluated or hinted ones (an example must not see its own answer); pass --shots 0, "
            "or take the shots from other data"
        )
    if shots != pool[:n]:
        log.warning(
            "few-shot example(s) %s, from outside the evaluated examples (the first of split '%s' are "
            "evaluated here, and an example never sees its own answer)",
            ", ".join(e.where for e in shots),
            split,
        )
    return shots


def shots_and_evaluated(
    source: str, n: int, evaluated: list[Example], *, split: str = "train", **load_kw
) -> tuple[list[Example], list[Example]]:
    """(shots, examples to evaluate): `draw_shots`, and when every example is evaluated (all of one file),
    the first n evaluated examples become the shots and are left out of the evaluation."""
    try:
        return draw_shots(source, n, evaluated, split=split, **load_kw), evaluated
    except NoShotsLeft:
        if len(evaluated) <= n:
            raise
    shots, rest = evaluated[:n], evaluated[n:]
    log.warning(
        "few-shot example(s) %s: every example of split '%s' is evaluated, so these are the shots and "
        "are not evaluated (%d are)",
        ", ".join(e.where for e in shots),
        split,
        len(rest),
    )
    return shots, rest
