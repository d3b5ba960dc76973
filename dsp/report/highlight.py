"""Hint words found in a text: the text cut into plain runs and single marked words, for a template to show.

A word is marked when it is one of a hint's words, compared as `dsp.metrics.words` compares them (lower-cased
words; separators and punctuation ignored), the way hint F1 reads a hint.
"""

from __future__ import annotations

from typing import Mapping

from dsp.metrics import word_spans, words

Segment = tuple[str, str]
"""(text, the space-separated keys of the hints holding it: "" for plain text)."""


def hint_words(hint: str | None) -> frozenset[str]:
    return frozenset(words(hint)) if hint else frozenset()


def segments(text: str, hints: Mapping[str, frozenset[str]]) -> list[Segment]:
    """`text` as plain runs and marked words; each marked word carries the keys of every hint that holds it."""
    out: list[Segment] = []
    pos = 0
    for m in word_spans(text):
        word = m.group().lower()
        keys = " ".join(k for k, ws in hints.items() if word in ws)
        if keys:
            if m.start() > pos:
                out.append((text[pos : m.start()], ""))
            out.append((m.group(), keys))
            pos = m.end()
    if pos < len(text):
        out.append((text[pos:], ""))
    return out
