"""What the eval page shows, built from eval folders alone: each run's header and table, the columns of answers,
the pairs of columns compared, and one card per example.

One folder: the columns are its conditions, the pairs every two of them (the later in `dsp.conditions.CONDITIONS`'
order minus the earlier), with the numbers of its summary.json. Several folders of one task: the columns are
each run's conditions, the pairs each condition of a later folder minus the same condition of an earlier one,
paired by example id (`dsp.metrics.paired_difference`, as bench/paired.py computes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from dsp.conditions import CONDITIONS, complete_rows, condition_pairs, pair_summaries
from dsp.metrics import paired_difference
from dsp.report import charts
from dsp.report.highlight import Segment, hint_words, segments
from dsp.report.runs import EvalRun

SHORT = {"none": "no hint", "tfidf": "TF-IDF", "policy": "policy", "oracle": "oracle"}
COLLAPSE_AFTER = 200
"""Pages with more examples than this show each card closed (a click opens it), so 2,000 still open quickly."""
MAX_EXAMPLE_CHARTS = 12


@dataclass
class Column:
    """One run's answers under one condition."""

    index: int
    """Its place in `EvalPage.columns` and in each card's cells."""
    label: str
    run: int
    condition: str

    @property
    def key(self) -> str:
        return f"c{self.index}"

    @property
    def hinted(self) -> bool:
        return self.condition != "none"


@dataclass
class Pair:
    """The paired difference a - b, and how many examples each side won."""

    key: str
    a: Column
    b: Column
    mean: float
    ci: float
    n: int
    diffs: dict[int, float] = field(default_factory=dict)
    """card index -> difference, over the examples the mean is taken over."""
    chart: Markup | None = None

    @property
    def label(self) -> str:
        return f"{self.a.label} − {self.b.label}"

    @property
    def value(self) -> str:
        return f"{self.a.key}|{self.b.key}"

    @property
    def linked(self) -> bool:
        """Whether its per-example chart draws one bar per example, each a link to its card."""
        return len(self.diffs) <= charts.MAX_LINKED_BARS

    @property
    def counts(self) -> tuple[int, int, int]:
        """(examples a won, lost, tied)."""
        d = list(self.diffs.values())
        return sum(x > 0 for x in d), sum(x < 0 for x in d), sum(x == 0 for x in d)


@dataclass
class Cell:
    column: Column
    hint: str | None = None
    output: str | None = None
    score: float | None = None
    status: str = "absent"
    """ok; failed (the LLM call failed for good); unanswered (never sent: a cap stopped the run); absent (the run
    has no such example)."""
    error: str = ""


@dataclass
class Card:
    index: int
    id: str
    input: list[Segment]
    reference: list[Segment]
    cells: list[Cell]


@dataclass
class RunView:
    """One run's header and summary table, the numbers of its summary.json."""

    label: str
    path: Path
    summary: dict[str, Any]
    pairs: list[dict[str, Any]]
    date: str
    note: str


@dataclass
class EvalPage:
    title: str
    metric: str
    runs: list[RunView]
    columns: list[Column]
    pairs: list[Pair]
    default_pair: Pair | None
    highlight: str
    cards: list[Card]
    lacking: list[tuple[str, list[str]]]
    pair_chart: Markup | None
    collapsed: bool

    @property
    def comparison(self) -> bool:
        return len(self.runs) > 1

    @property
    def hinted(self) -> list[Column]:
        return [c for c in self.columns if c.hinted]


def run_labels(paths: list[Path]) -> list[str]:
    """Short names that tell the folders apart: their names, else their last two path parts, else numbered."""
    for depth in (1, 2):
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{i + 1}:{p.resolve().name}" for i, p in enumerate(paths)]


def _ordered(conditions: list[str]) -> list[str]:
    return [c for c in CONDITIONS if c in conditions] + [c for c in conditions if c not in CONDITIONS]


def _columns(runs: list[EvalRun], labels: list[str]) -> list[Column]:
    cols = []
    for r, run in enumerate(runs):
        for c in _ordered(run.conditions):
            short = SHORT.get(c, c)
            cols.append(Column(len(cols), short if len(runs) == 1 else f"{labels[r]} · {short}", r, c))
    return cols


def _cell(column: Column, row: dict | None, metric: str) -> Cell:
    if row is None:
        return Cell(column)
    c = column.condition
    score = row["scores"].get(c)
    value = score[metric] if score is not None else None
    if value is not None and math.isnan(value):
        value = None
    status = "ok" if value is not None else "failed" if c in row.get("failed", []) else "unanswered"
    return Cell(column, row["hints"].get(c), row["outputs"].get(c), value, status, (row.get("errors") or {}).get(c, ""))


def _cards(runs: list[EvalRun], columns: list[Column]) -> list[Card]:
    by_id = [{r["id"]: r for r in run.rows} for run in runs]
    ids = list(dict.fromkeys(r["id"] for run in runs for r in run.rows))
    metric = runs[0].metric
    cards = []
    for index, id_ in enumerate(ids):
        rows = [b.get(id_) for b in by_id]
        first = next((r for r in rows if r is not None and "input" in r), {})
        cells = [_cell(col, rows[col.run], metric) for col in columns]
        hints = {cell.column.key: hint_words(cell.hint) for cell in cells if cell.column.hinted and cell.hint}
        cards.append(
            Card(
                index, id_, segments(first.get("input", ""), hints), segments(first.get("reference", ""), hints), cells
            )
        )
    return cards


def _scores(cards: list[Card], col: Column) -> dict[int, float]:
    return {card.index: card.cells[col.index].score for card in cards if card.cells[col.index].score is not None}


def run_pair_summaries(run: EvalRun) -> dict[str, dict[str, Any]]:
    """The folder's paired differences as its summary.json holds them, or as `dsp eval` computes them for a
    summary.json written before it held them all."""
    recorded = run.summary.get("pairs")
    if isinstance(recorded, dict) and all(f"{a}-{b}" in recorded for a, b in condition_pairs(run.conditions)):
        return recorded
    return pair_summaries(run.rows, run.conditions, run.metric)


def _run_pairs(run: EvalRun, columns: list[Column], cards: list[Card]) -> list[Pair]:
    """A single folder's pairs: its summary.json's numbers (computed the same way for folders without them)."""
    summaries = run_pair_summaries(run)
    col = {c.condition: c for c in columns}
    complete = {r["id"] for r in complete_rows(run.rows, run.conditions)}
    pairs = []
    for a, b in condition_pairs(run.conditions):
        s = summaries[f"{a}-{b}"]
        sa, sb = _scores(cards, col[a]), _scores(cards, col[b])
        diffs = {card.index: sa[card.index] - sb[card.index] for card in cards if card.id in complete}
        pairs.append(Pair(f"p{len(pairs)}", col[a], col[b], _stat(s["mean"]), _stat(s["ci95"]), s["n"], diffs))
    return pairs


def _stat(value: float | None) -> float:
    """A statistic as summary.json holds it: null where it could not be computed (one example's CI), NaN here."""
    return math.nan if value is None else value


def _cross_pairs(runs: list[EvalRun], columns: list[Column], cards: list[Card]) -> list[Pair]:
    """Each condition of a later folder minus the same condition of an earlier one, paired by example id."""
    pairs = []
    for j in range(len(runs)):
        for i in range(j):
            for c in _ordered(runs[j].conditions):
                a = next((x for x in columns if x.run == j and x.condition == c), None)
                b = next((x for x in columns if x.run == i and x.condition == c), None)
                if a is None or b is None:
                    continue
                sa, sb = _scores(cards, a), _scores(cards, b)
                p = paired_difference(sa, sb)
                diffs = {k: sa[k] - sb[k] for k in sa if k in sb}
                pairs.append(Pair(f"p{len(pairs)}", a, b, p["diff"], p["diff_ci"], p["n"], diffs))
    return pairs


def _default_pair(pairs: list[Pair]) -> Pair | None:
    wanted = [("policy", "tfidf"), ("policy", "policy"), ("policy", None)]
    for a, b in wanted:
        for p in pairs:
            if p.a.condition == a and (b is None or p.b.condition == b):
                return p
    return pairs[0] if pairs else None


def _run_view(run: EvalRun, label: str) -> RunView:
    date = run.summary.get("date")
    if not date:
        mtime = (run.path / "summary.json").stat().st_mtime
        date = datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds") + " (summary.json written)"
    summaries = run_pair_summaries(run)
    pairs = [dict(s, label=f"{SHORT.get(s['a'], s['a'])} − {SHORT.get(s['b'], s['b'])}") for s in summaries.values()]
    return RunView(label, run.path, run.summary, pairs, date, run.note)


def _lacking(runs: list[EvalRun], labels: list[str], cards: list[Card]) -> list[tuple[str, list[str]]]:
    out = []
    for run, label in zip(runs, labels):
        have = {r["id"] for r in run.rows}
        missing = [c.id for c in cards if c.id not in have]
        if missing:
            out.append((label, missing))
    return out


def build_eval_page(runs: list[EvalRun]) -> EvalPage:
    labels = run_labels([r.path for r in runs])
    columns = _columns(runs, labels)
    cards = _cards(runs, columns)
    pairs = _run_pairs(runs[0], columns, cards) if len(runs) == 1 else _cross_pairs(runs, columns, cards)
    default = _default_pair(pairs)
    metric = runs[0].metric
    for p in [default] if default and len(pairs) > MAX_EXAMPLE_CHARTS else pairs:
        p.chart = charts.example_chart(list(p.diffs.items()), p.label, metric, f"examples-{p.key}")
    pair_chart = charts.pair_chart([(p.label, p.mean, p.ci) for p in pairs], metric)
    highlight = default.a.key if default and default.a.hinted else next((c.key for c in columns if c.hinted), "")
    task = runs[0].task or "task not recorded"
    title = (
        f"dsp eval · {task} · {labels[0]}"
        if len(runs) == 1
        else f"dsp eval comparison · {task} · {' vs '.join(labels)}"
    )
    return EvalPage(
        title,
        metric,
        [_run_view(r, lab) for r, lab in zip(runs, labels)],
        columns,
        pairs,
        default,
        highlight,
        cards,
        _lacking(runs, labels, cards),
        pair_chart,
        len(cards) > COLLAPSE_AFTER,
    )
