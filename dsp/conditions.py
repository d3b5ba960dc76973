"""The hint sources `dsp eval` compares, and the paired statistics of their scores (what summary.json and the
eval report show). Plain functions of an eval's rows: `dsp.eval` writes them, `dsp.report` reads them back."""

from __future__ import annotations

import math
from typing import Any, Sequence

from dsp.metrics import mean_ci

CONDITIONS = ("none", "tfidf", "policy", "oracle")
LABELS = {
    "none": "no hint",
    "tfidf": "TF-IDF keywords (lead)",
    "policy": "policy hint",
    "oracle": "oracle hint (pseudo-label)",
}


def stats(values: list[float]) -> dict[str, float]:
    """Mean, 95% CI half-width and count of the values that are not NaN."""
    mean, ci = mean_ci(values)
    return {"mean": mean, "ci95": ci, "n": sum(not math.isnan(v) for v in values)}


def condition_pairs(conditions: Sequence[str]) -> list[tuple[str, str]]:
    """(a, b) for every two of `conditions`, a the later in CONDITIONS' order: the paired differences a - b reported."""
    ordered = [c for c in CONDITIONS if c in conditions]
    return [(a, b) for j, a in enumerate(ordered) for b in ordered[:j]]


def complete_rows(rows: list[dict], conditions: Sequence[str]) -> list[dict]:
    """The rows scored in every condition: the ones every paired number of an eval is taken over."""
    return [r for r in rows if all(r["scores"].get(c) is not None for c in conditions)]


def pair_summaries(rows: list[dict], conditions: Sequence[str], metric: str) -> dict[str, dict[str, Any]]:
    """{"a-b": a, b, and the mean of a - b with its 95% CI} for every pair of `condition_pairs`."""
    complete = complete_rows(rows, conditions)
    return {
        f"{a}-{b}": {"a": a, "b": b, **stats([r["scores"][a][metric] - r["scores"][b][metric] for r in complete])}
        for a, b in condition_pairs(conditions)
    }
