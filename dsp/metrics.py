"""Scores as plain functions: ROUGE, BLEU, exact match of numbers, slot recall, hint F1, confidence intervals."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from functools import lru_cache
from typing import Iterator, Mapping, Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (split after . ! ? and at line breaks), stripped, none empty."""
    parts = (s.strip() for part in text.strip().splitlines() for s in _SENTENCE_END.split(part))
    return [s for s in parts if s]


def _sentences_per_line(text: str) -> str:
    # rougeLsum reads one sentence a line.
    return "\n".join(split_sentences(text))


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2, ROUGE-Lsum F1 (x100, Porter stemming) and their mean, `rouge_avg`."""
    s = _rouge_scorer().score(_sentences_per_line(reference), _sentences_per_line(prediction))
    out = {k: 100.0 * s[k].fmeasure for k in ("rouge1", "rouge2", "rougeLsum")}
    out["rouge_avg"] = sum(out.values()) / 3
    return out


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def word_spans(text: str) -> Iterator[re.Match]:
    """The words of `text` as `words` finds them, each a match with its place in the text."""
    return _WORD.finditer(text)


def hint_f1(prediction: str, reference: str) -> float:
    """Bag-of-words F1 between two hints (lower-cased words; separators ignored)."""
    p, r = Counter(words(prediction)), Counter(words(reference))
    if not p or not r:
        return float(not p and not r)
    overlap = sum((p & r).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def hint_hits(hint: str, reference: str, separator: str) -> list[float]:
    """The DSP paper's hint-hit terms, one per hint phrase: +1 if the phrase occurs in the reference, else -0.25.

    Phrases are the hint cut at `separator` (at whitespace when the separator is a space). A phrase
    occurs when it is in the lower-cased reference with no letter or digit glued to either end, so
    "Premier League" hits "the premier league's" and "art" does not hit "start".
    """
    ref = " ".join(reference.lower().split())
    out = []
    for phrase in hint.split(separator.strip() or None):
        p = " ".join(phrase.lower().split())
        if p and any(c.isalnum() for c in p):
            out.append(1.0 if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", ref) else -0.25)
    return out


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (Student t); NaNs are left out."""
    xs = [v for v in values if not math.isnan(v)]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(xs) / n
    if n == 1:
        return mean, float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, t_quantile(0.975, n - 1) * sd / math.sqrt(n)


def paired_difference(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Two sets of scores keyed by example id, paired on the ids both hold (in A's order; NaNs left out):
    n, the mean of A and of B and the mean of A - B, each with the half-width of its 95% CI (Student t)."""
    ids = [i for i in a if i in b and not math.isnan(a[i]) and not math.isnan(b[i])]
    ma, ca = mean_ci([a[i] for i in ids])
    mb, cb = mean_ci([b[i] for i in ids])
    d, cd = mean_ci([a[i] - b[i] for i in ids])
    return {"n": len(ids), "a": ma, "a_ci": ca, "b": mb, "b_ci": cb, "diff": d, "diff_ci": cd}


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The p quantile (0.5 < p < 1) of Student's t with `df` degrees of freedom, exact to ~1e-10:
    bisection on the CDF, computed from the regularized incomplete beta function (scipy is not a
    dependency). Every n gets its own quantile, not the normal 1.96 past a table's end."""
    if not 0.5 < p < 1.0 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df >= 1, not p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def warm_up(metric: str) -> threading.Thread:
    """Import the library behind `metric` in a background thread and return the thread.

    rouge-score and BLEU import all of NLTK (about 1.5 s on 2 cores); an eval starts this first, so
    the import runs while the LLM answers instead of after (BENCHMARKS.md, eval overhead).
    """

    def load() -> None:
        if metric.startswith("rouge"):
            _rouge_scorer()
        elif metric in ("bleu", "dialogue_score"):
            import nltk.translate.bleu_score  # noqa: F401

    thread = threading.Thread(target=load, name=f"warm-up {metric}", daemon=True)
    thread.start()
    return thread


def bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU-4 (x100) of lower-cased word tokens, with smoothing (method 1) so that a short
    answer missing one n-gram order is not scored 0. NLTK's implementation (already installed with
    rouge-score), not ours."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp, ref = words(prediction), words(reference)
    if not hyp or not ref:
        return 0.0
    return 100.0 * sentence_bleu([ref], hyp, smoothing_function=SmoothingFunction().method1)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_number(text: str) -> float | None:
    """The last number in `text` ("1,234.50" -> 1234.5; GSM8K's "#### 72" -> 72), or None."""
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def exact_match_number(prediction: str, reference: str | float) -> float:
    """1.0 when the final numbers of prediction and reference agree (within 1e-6), else 0.0."""
    gold = reference if isinstance(reference, (int, float)) else final_number(reference)
    pred = final_number(prediction)
    return float(gold is not None and pred is not None and abs(pred - float(gold)) < 1e-6)


def slot_recall(response: str, values: Sequence[str]) -> float:
    """Share of the reference's informed slot values that occur in the response (case-insensitive,
    whole words); 1.0 when there are none to inform."""
    wanted = [v for v in values if v.strip()]
    if not wanted:
        return 1.0
    text = f" {' '.join(words(response))} "
    return sum(f" {' '.join(words(v))} " in text for v in wanted) / len(wanted)
