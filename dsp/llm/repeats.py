"""Where an answer starts to say again what it has said: the client's stop rule for base models that loop.

A small base model asked for a summary often writes a few sentences and then repeats one of them, over and
over, until `max_tokens`. Text after the first repeat only lowers a ROUGE-like score and costs generation
time, so a request with `stop_repeats` is streamed and closed as soon as a sentence comes again
(`AsyncLLMClient`). The rule is plain text, the same for every model and server.
"""

from __future__ import annotations

import re

_BREAK = re.compile(r"(?<=[.!?])\s+")
MIN_WORDS = 3  # shorter pieces ("Mr.", "U.S.") are abbreviations as often as sentences; they never count


def _norm(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def first_repeat(text: str, final: bool = False) -> int | None:
    """The offset in `text` where its first repeated sentence starts, or None.

    A sentence ends at `.`, `!` or `?` followed by white space; it repeats when an earlier sentence reads the
    same, case and spacing aside. With `final` (the answer is complete), a last piece without its end mark
    that begins an earlier sentence over again counts as a repeat too (the loop cut off by `max_tokens`).
    """
    seen: list[str] = []
    start = len(text) - len(text.lstrip())
    for brk in [*_BREAK.finditer(text), None]:
        end = brk.start() if brk else len(text.rstrip())
        piece = _norm(text[start:end])
        complete = brk is not None or (final and piece.endswith((".", "!", "?")))
        if len(piece.split()) >= MIN_WORDS:
            if complete and piece in seen:
                return start
            if not complete and final and any(s.startswith(piece) for s in seen):
                return start
            seen.append(piece)
        if brk is None:
            return None
        start = brk.end()
    return None


def cut_repeats(text: str) -> str:
    """`text` without its first repeated sentence and all after it (the whole answer known)."""
    at = first_repeat(text, final=True)
    return text if at is None else text[:at].rstrip()
