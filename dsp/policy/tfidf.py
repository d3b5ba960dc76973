"""A non-learned baseline: the TF-IDF keywords of an input's lead."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

from dsp.io import write_json_atomic
from dsp.metrics import split_sentences
from dsp.policy.base import write_marker
from dsp.tasks.stopwords import STOPWORDS

_WORD = re.compile(r"[A-Za-z][\w'’-]*\w|\d[\d,.]*\d|\w")


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 2]


class TfidfPolicy:
    """Top `k` words of the first `lead_sentences` sentences by TF-IDF, in order of first use."""

    kind = "tfidf"

    def __init__(
        self, idf: dict[str, float], default_idf: float, k: int = 10, lead_sentences: int = 3, separator: str = "; "
    ):
        self.idf, self.default_idf = idf, default_idf
        self.k, self.lead_sentences, self.separator = k, lead_sentences, separator

    @classmethod
    def fit(cls, documents: Sequence[str], **kw) -> "TfidfPolicy":
        df = Counter(w for doc in documents for w in {w.lower() for w in _content_words(doc)})
        n = len(documents)
        idf = {w: math.log((1 + n) / (1 + c)) + 1 for w, c in df.items()}
        return cls(idf, math.log(1 + n) + 1, **kw)

    def _hint(self, text: str) -> str:
        lead = " ".join(split_sentences(text)[: self.lead_sentences])
        found = _content_words(lead)
        tf = Counter(w.lower() for w in found)
        score = {w: c * self.idf.get(w, self.default_idf) for w, c in tf.items()}
        top = set(sorted(score, key=lambda w: (-score[w], w))[: self.k])
        out, seen = [], set()
        for w in found:  # input order, surface form of first use
            if w.lower() in top and w.lower() not in seen:
                seen.add(w.lower())
                out.append(w)
        return self.separator.join(out)

    def generate(self, inputs: Sequence[str], *, batch_size: int = 16) -> list[str]:
        return [self._hint(t) for t in inputs]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            path / "tfidf.json",
            {
                "idf": self.idf,
                "default_idf": self.default_idf,
                "k": self.k,
                "lead_sentences": self.lead_sentences,
                "separator": self.separator,
            },
        )
        write_marker(path, self.kind)

    @classmethod
    def load(cls, path: str | Path) -> "TfidfPolicy":
        d = json.loads((Path(path) / "tfidf.json").read_text(encoding="utf-8"))
        return cls(d.pop("idf"), d.pop("default_idf"), **d)
