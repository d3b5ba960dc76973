"""What the RL page shows: the curves of log.jsonl, the run's settings and state, and the greedy hints of a few
fixed dev articles at each dev evaluation (`dev/hints` in log.jsonl), so a reader sees how the hint changed as the
reward moved."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from dsp.report import charts
from dsp.report.highlight import Segment, hint_words, segments
from dsp.report.runs import RLRun

CURVES = (
    ("charts/reward", "reward (batch mean)"),
    ("val/", "dev score (greedy hints)"),
    ("objective/kl", "KL to the start policy (nats)"),
    ("objective/entropy", "entropy"),
    ("charts/llm_calls", "LLM calls (whole run)"),
    ("charts/cache_hit_rate", "LLM cache hit rate"),
)
DEV_HINTS = "dev/hints"


@dataclass
class Evaluation:
    """One dev evaluation as one article saw it."""

    step: int
    dev_score: float | None
    score: float | None
    hint: list[Segment]
    """The hint, its words found in the article's reference marked."""


@dataclass
class Trail:
    id: str
    input: str
    reference: str
    evaluations: list[Evaluation]


@dataclass
class RLPage:
    title: str
    state: list[tuple[str, Any]]
    settings: list[tuple[str, Any]]
    curves: Markup | None
    trails: list[Trail]
    metric: str


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _points(log: list[dict], key: str) -> list[tuple[int, float]]:
    return [(row["step"], v) for row in log if (v := _number(row.get(key))) is not None]


def val_key(log: list[dict]) -> str | None:
    return next((k for row in log for k in row if k.startswith("val/")), None)


def _curves(log: list[dict]) -> Markup | None:
    vk = val_key(log)
    panels = []
    for key, title in CURVES:
        key = vk if key == "val/" else key
        if key and (pts := _points(log, key)):
            panels.append((f"{title}" + (f": {key[4:]}" if key == vk else ""), pts))
    times = sorted({k for row in log for k in row if k.startswith("time/")})
    stacked = {k[5:]: pts for k in times if (pts := _points(log, k))}
    return charts.curves_chart(panels, stacked)


def _trails(run: RLRun, vk: str | None) -> list[Trail]:
    trails = []
    for article in run.articles:
        ref = article.get("reference", "")
        evals = []
        for row in run.log:
            shown = {h.get("id"): h for h in row.get(DEV_HINTS) or [] if isinstance(h, dict)}
            if article["id"] in shown:
                h = shown[article["id"]]
                hint = h.get("hint") or ""
                marks = segments(hint, {"ref": hint_words(ref)})
                evals.append(
                    Evaluation(row["step"], _number(row.get(vk)) if vk else None, _number(h.get("score")), marks)
                )
        trails.append(Trail(article["id"], article.get("input", ""), ref, evals))
    return trails


def _state(run: RLRun) -> list[tuple[str, Any]]:
    steps = [row["step"] for row in run.log if "charts/reward" in row]
    r = run.result
    state: list[tuple[str, Any]] = [
        ("iterations", f"{max(steps, default=0)} of {run.config.get('iterations', '?')}"),
        (
            "status",
            "finished"
            if r and not r.get("stopped")
            else f"stopped: {r['stopped']}"
            if r
            else "running, or ended before writing result.json",
        ),
        ("algorithm", run.config.get("algo")),
        ("start policy", run.config.get("policy")),
        ("data", run.config.get("data")),
        ("folder", run.path),
    ]
    if r:
        state.append(("seconds", r.get("seconds")))
        llm = r.get("llm") or {}
        if llm:
            state.append(
                (
                    "LLM",
                    f"{llm.get('requests', 0)} requests, {llm.get('cache_hits', 0)} cache hits, "
                    f"{llm.get('prompt_tokens', 0)} / {llm.get('completion_tokens', 0)} tokens in / out"
                    + (f", USD {llm['cost']:.4f}" if llm.get("cost") else ""),
                )
            )
    return state


def build_rl_page(run: RLRun) -> RLPage:
    vk = val_key(run.log)
    settings = [(k, v) for k, v in run.config.items() if k != "command"]
    title = f"dsp rl · {run.config.get('algo', '')} · {run.path.resolve().name}"
    return RLPage(title, _state(run), settings, _curves(run.log), _trails(run, vk), vk[4:] if vk else "metric")
