"""`dsp eval`: the same examples through the LLM with no hint, policy hints, and oracle hints.

Every condition sees the same examples and few-shot block, so differences are paired: the
report gives each condition's mean and the mean paired difference to no hint, with 95% CIs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from dsp.conditions import CONDITIONS, LABELS, complete_rows, pair_summaries, stats
from dsp.data import DataSpec, Example, scored_once
from dsp.errors import DSPError, LLMError, MissingSplit
from dsp.io import RunLock, finite_or_none, write_json_atomic, write_jsonl_atomic, write_text_atomic
from dsp.llm.client import AsyncLLMClient
from dsp.llm.types import OPENAI_URL, server_namespace
from dsp.metrics import hint_f1, warm_up
from dsp.policy.base import HintPolicy
from dsp.policy.tfidf import TfidfPolicy
from dsp.roundtrip import Answers, ask
from dsp.settings import above, at_least, check_settings
from dsp.shots import shots_and_evaluated
from dsp.tasks import SummarizationTask, Task


@dataclass(kw_only=True)
class EvalConfig(DataSpec):
    """Settings of one `dsp eval` run."""

    output_dir: str
    """Where examples.jsonl, summary.json, report.md and report.html go."""
    split: str = "dev"
    """Split to evaluate on; an optional [start:end] takes a range of its records (validation[:100]), commas join several."""
    conditions: tuple[str, ...] = ("none", "policy", "oracle")
    """Hint sources to compare: none, tfidf, policy, oracle."""
    limit: int | None = above(None, 0)
    """Evaluate the first N examples only."""
    shots: int = at_least(1, 0)
    """Few-shot examples in each prompt, the first of `shots_split` that are not evaluated (with one --data file, from past the evaluated ones)."""
    shots_split: str = "train"
    """Split the few-shot examples come from."""
    tfidf_split: str = "train"
    """Split whose inputs give the TF-IDF baseline its IDF (the evaluated inputs if that split is absent)."""
    id_field: str | None = None
    """Field holding each record's id in examples.jsonl; None: the task's [data] id_field, else `id` (file:line where a record has none)."""
    batch_size: int = above(16, 0)
    """Policy generation batch size."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything the caller wants recorded in summary.json (e.g. the policy path)."""

    def __post_init__(self) -> None:
        check_settings(self)
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions:
            raise DSPError(
                f"--conditions: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CONDITIONS)}"
            )
        twice = next((c for i, c in enumerate(self.conditions) if c in self.conditions[:i]), None)
        if twice is not None:
            raise DSPError(f"--conditions: '{twice}' twice; give each hint source once")


def make_hints(
    cfg: EvalConfig, task: Task, examples: list[Example], policy: HintPolicy | None, idf_texts: Sequence[str] = ()
) -> dict[str, list[str | None]]:
    """One hint (or None for no hint) per example and condition."""
    hints: dict[str, list[str | None]] = {}
    inputs = [e.input for e in examples]
    for c in cfg.conditions:
        if c == "none":
            hints[c] = [None] * len(examples)
        elif c == "oracle":
            hints[c] = [task.pseudo_label(e) for e in examples]
        elif c == "tfidf":
            hints[c] = TfidfPolicy.fit(list(idf_texts) or inputs, separator=task.separator).generate(inputs)
        elif c == "policy":
            if policy is None:
                raise DSPError("--conditions includes 'policy' but no --policy was given")
            hints[c] = policy.generate(inputs, batch_size=cfg.batch_size)
    return hints


def summarize(cfg: EvalConfig, task: Task, rows: list[dict]) -> dict[str, Any]:
    metric = task.metric
    complete = complete_rows(rows, cfg.conditions)  # paired: only examples where every condition has a score
    conditions: dict[str, Any] = {}
    for c in cfg.conditions:
        vals = [r["scores"][c][metric] for r in complete]
        entry = {"label": LABELS[c], metric: stats(vals)}
        if "none" in cfg.conditions and c != "none":
            entry["delta_vs_none"] = stats([r["scores"][c][metric] - r["scores"]["none"][metric] for r in complete])
        if c not in ("none", "oracle") and "oracle" in cfg.conditions:
            entry["hint_f1_vs_oracle"] = stats(
                [hint_f1(r["hints"][c] or "", r["hints"]["oracle"] or "") for r in complete]
            )
        conditions[c] = entry
    return {
        "metric": metric,
        "examples": len(rows),
        "complete": len(complete),
        "conditions": conditions,
        "pairs": pair_summaries(rows, cfg.conditions, metric),
    }


def report_markdown(summary: dict[str, Any]) -> str:
    metric = summary["metric"]
    lines = [
        f"| hint | {metric} | 95% CI | Δ vs no hint | 95% CI of Δ | hint F1 vs oracle |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c, e in summary["conditions"].items():
        s, d, f = e[metric], e.get("delta_vs_none"), e.get("hint_f1_vs_oracle")
        lines.append(
            f"| {e['label']} | {s['mean']:.2f} | ± {s['ci95']:.2f} | "
            + (f"{d['mean']:+.2f} | ± {d['ci95']:.2f}" if d else "- | -")
            + (f" | {f['mean']:.3f} |" if f else " | - |")
        )
    u = summary["llm"]
    why = ", ".join(f"{kind} {n}" for kind, n in sorted(u.get("retry_reasons", {}).items()))
    lines += [
        "",
        f"{summary['complete']} of {summary['examples']} examples scored in every condition. "
        f"LLM: {u['requests']} requests sent, {u['cache_hits']} cache hits, {u['dedup_hits']} deduplicated, "
        f"{u['retries']} retries{f' ({why})' if why else ''}, {u['failures']} failed; "
        f"tokens {u['prompt_tokens']} in / {u['completion_tokens']} out; "
        f"wall {summary['seconds']:.1f} s.",
    ]
    if summary.get("stopped"):
        lines.append(f"Stopped early: {summary['stopped']}")
    if summary.get("failed_calls"):
        lines.append(
            f"Failed for good: {summary['failed_calls']} LLM calls (their conditions are listed under "
            '"failed" in examples.jsonl; a re-run retries only them).'
        )
    return "\n".join(lines) + "\n"


def _where(client: AsyncLLMClient) -> str:
    """The LLM's address as a report shows it: the base URL without credentials, or what the client calls itself
    when it has none of its own (the embedded LLM)."""
    if getattr(client, "pool", None) is not None:
        return client.where
    return server_namespace(client.config.base_url or OPENAI_URL)


def failure_error(summary: dict[str, Any]) -> LLMError | None:
    """The error to exit with (code 4) once the report is written, when some LLM calls failed for good."""
    n = summary.get("failed_calls") or 0
    if not n:
        return None
    return LLMError(
        f"{n} LLM call(s) failed for good; the report is written with those rows marked "
        f'("failed" in examples.jsonl). First: {summary["first_failure"]}'
    )


@dataclass
class EvalData:
    """What an eval reads: the evaluated examples, the few-shot examples, the TF-IDF baseline's texts."""

    examples: list[Example]
    shots: list[Example]
    idf_texts: list[str]


def load_eval_data(cfg: EvalConfig) -> EvalData:
    """Read (and so check) every input of an eval. The CLI calls it before the LLM is started or reached, so
    bad data is reported as bad data, not hidden behind an LLM that is slow to start or unreachable."""
    id_field = cfg.id_field or "id"
    # --limit N: the first N records, a repeated one scored once
    examples = scored_once(cfg.examples(cfg.split, limit=cfg.limit, id_field=id_field), id_field)
    fields = dict(input_field=cfg.input_field, target_field=cfg.target_field, config_name=cfg.data_config)
    shots, examples = shots_and_evaluated(cfg.data, cfg.shots, examples, split=cfg.shots_split, **fields)
    idf_texts: list[str] = []
    if "tfidf" in cfg.conditions:
        try:
            idf_texts = [e.input for e in cfg.examples(cfg.tfidf_split)]
        except MissingSplit:
            pass  # fit on the evaluated inputs: TF-IDF needs no labels
    return EvalData(examples, shots, idf_texts)


async def run_eval(
    cfg: EvalConfig,
    client: AsyncLLMClient,
    task: Task | None = None,
    policy: HintPolicy | None = None,
    data: EvalData | None = None,
) -> dict[str, Any]:
    """Run the comparison and write the report files; returns the summary. One process at a time per output folder.
    `data`: from `load_eval_data(cfg)`, when the caller read it first."""
    with RunLock(cfg.output_dir):
        return await _run_eval(cfg, client, task, policy, data)


async def _run_eval(
    cfg: EvalConfig, client: AsyncLLMClient, task: Task | None, policy: HintPolicy | None, data: EvalData | None
) -> dict[str, Any]:
    task = task or SummarizationTask()
    started = time.time()
    warm_up(task.metric)  # the scorer's imports overlap loading, hinting and the LLM calls
    data = data or load_eval_data(cfg)
    examples, shots = data.examples, data.shots
    hints = make_hints(cfg, task, examples, policy, data.idf_texts)

    # Example-major, so a run stopped by a cap leaves whole examples (all conditions) behind.
    order = [(c, i) for i in range(len(examples)) for c in cfg.conditions]
    answers = await ask(client, task, [examples[i] for _, i in order], [hints[c][i] for c, i in order], shots)
    rows = scored_rows(cfg, task, examples, hints, order, answers)
    # Calls that failed for good do not stop the run: the report is written with them marked (each
    # row's "failed" lists its conditions), and the caller exits 4 after it (`failure_error`).
    failures = [str(a) for a in answers.failures]
    summary = summarize(cfg, task, rows)
    summary.update(
        task=task.name,
        split=cfg.split,
        data=cfg.data,
        shots=cfg.shots,
        model=client.config.model,
        endpoint=client.config.endpoint,
        base_url=_where(client),
        cache_namespace=client.config.cache_namespace,  # the embedded LLM's names its llama.cpp and model file
        date=datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        llm=client.usage.as_dict(),
        seconds=time.time() - started,
        stopped=str(answers.stopped) if answers.stopped is not None else None,
        failed_calls=len(failures),
        first_failure=failures[0] if failures else None,
        config={k: v for k, v in asdict(cfg).items() if k != "extra"},
    )
    summary.update(cfg.extra)  # the caller's task name, policy and command line
    write_eval(Path(cfg.output_dir), rows, summary)
    return summary


def scored_rows(
    cfg: EvalConfig,
    task: Task,
    examples: list[Example],
    hints: dict[str, list[str | None]],
    order: list[tuple[str, int]],
    answers: Answers,
) -> list[dict[str, Any]]:
    """examples.jsonl's rows: each example's input as the prompts held it, its reference, and per condition its
    hint, the LLM's output and its score (None, with the error, where the call failed)."""
    rows = [
        # the input as the prompts held it and the reference: `dsp report` rebuilds the page from this file alone
        {
            "id": e.id,
            "input": task.prompt_input(e),
            "reference": e.target,
            "hints": {c: hints[c][i] for c in cfg.conditions},
            "outputs": {},
            "scores": {},
            "errors": {},
            "failed": [],
        }
        for i, e in enumerate(examples)
    ]
    for (c, i), (answer,) in zip(order, answers.rows):
        row = rows[i]
        if isinstance(answer, DSPError):
            row["outputs"][c], row["scores"][c] = None, None
            row["errors"][c] = str(answer)
            if isinstance(answer, LLMError):
                row["failed"].append(c)
        else:
            row["outputs"][c] = answer.text
            row["scores"][c] = task.score(answer.text, examples[i])
    return rows


def write_eval(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """The run folder: examples.jsonl, summary.json, report.md and report.html."""
    # a CI of one example, a mean of none: missing, written as null
    write_jsonl_atomic(out / "examples.jsonl", finite_or_none(rows))
    write_json_atomic(out / "summary.json", finite_or_none(summary))
    write_text_atomic(out / "report.md", report_markdown(summary))
    from dsp.report import write_report  # matplotlib and jinja2: loaded once the answers are in

    write_report([out])
