"""Run folders read back for a report: what `dsp eval` and `dsp rl` wrote, checked as it is read.

A folder that is neither kind is one DSPError naming it; a file that is not JSON, or a row without a field
the page needs, is an InputError naming the file, the line and the field. Reading writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp.errors import DSPError, InputError

EVAL_FILES = ("summary.json", "examples.jsonl")
RL_FILES = ("config.json", "log.jsonl")
DEV_ARTICLES = "dev_articles.json"
"""The few dev articles whose greedy hints `dsp rl` logs at each dev evaluation (`dev/hints` in log.jsonl)."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(path, None, None, "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise InputError(path, e.lineno, None, f"not valid JSON ({e.msg})") from None


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line."""
    rows = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(path, lineno, None, "not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(path, lineno, None, f"not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(path, lineno, None, "expected a JSON object")
            rows.append((lineno, row))
    return rows


def run_kind(path: Path) -> str:
    """'eval' or 'rl', from the files the folder holds."""
    if not path.is_dir():
        raise DSPError(f"{path}: no such run folder")
    if all((path / f).is_file() for f in EVAL_FILES):
        return "eval"
    if all((path / f).is_file() for f in RL_FILES):
        config = read_json(path / "config.json")
        command = config.get("command") if isinstance(config, dict) else None
        if command == "rl":
            return "rl"
        raise DSPError(f"{path}: a `dsp {command}` run folder; reports are made of dsp eval and dsp rl run folders")
    raise DSPError(
        f"{path}: not a run folder of dsp eval (summary.json and examples.jsonl) or dsp rl (config.json and log.jsonl)"
    )


@dataclass
class EvalRun:
    """One `dsp eval` folder: its summary.json and the rows of examples.jsonl."""

    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    note: str = ""
    """Where the inputs came from when the rows do not hold them (folders written before they did)."""

    @property
    def task(self) -> str | None:
        return self.summary.get("task")

    @property
    def metric(self) -> str:
        return self.summary["metric"]

    @property
    def conditions(self) -> list[str]:
        return list(self.summary["conditions"])


def _check_summary(path: Path, summary: Any) -> None:
    if not isinstance(summary, dict):
        raise InputError(path, None, None, "expected a JSON object")
    if not isinstance(summary.get("metric"), str):
        raise InputError(path, None, "metric", "missing or not a string")
    if not isinstance(summary.get("conditions"), dict) or not summary["conditions"]:
        raise InputError(path, None, "conditions", "missing or empty")
    metric = summary["metric"]
    for c, entry in summary["conditions"].items():
        stats = entry.get(metric) if isinstance(entry, dict) else None
        if not (isinstance(stats, dict) and all(k in stats for k in ("mean", "ci95", "n"))):
            raise InputError(path, None, f"conditions.{c}.{metric}", "missing, or without mean, ci95 and n")


def _check_row(path: Path, lineno: int, row: dict, conditions: list[str], metric: str) -> None:
    if not isinstance(row.get("id"), (str, int)):
        raise InputError(path, lineno, "id", "missing or not a string")
    for key in ("scores", "hints", "outputs"):
        if not isinstance(row.get(key), dict):
            raise InputError(path, lineno, key, "missing or not an object")
    for c in conditions:
        score = row["scores"].get(c)
        if score is not None and not (isinstance(score, dict) and isinstance(score.get(metric), (int, float))):
            raise InputError(path, lineno, f"scores.{c}.{metric}", "missing or not a number")
        for key in ("hints", "outputs"):
            if not isinstance(row[key].get(c), (str, type(None))):
                raise InputError(path, lineno, f"{key}.{c}", "not a string")
    for key in ("input", "reference"):
        if not isinstance(row.get(key, ""), str):
            raise InputError(path, lineno, key, "not a string")


def read_eval_run(path: Path) -> EvalRun:
    summary = read_json(path / "summary.json")
    _check_summary(path / "summary.json", summary)
    conditions, metric = list(summary["conditions"]), summary["metric"]
    rows, seen = [], {}
    for lineno, row in read_jsonl(path / "examples.jsonl"):
        _check_row(path / "examples.jsonl", lineno, row, conditions, metric)
        row["id"] = str(row["id"])
        if row["id"] in seen:
            raise InputError(path / "examples.jsonl", lineno, "id", f"'{row['id']}' is also on line {seen[row['id']]}")
        seen[row["id"]] = lineno
        rows.append(row)
    run = EvalRun(path, summary, rows)
    _fill_missing_inputs(run)
    return run


def _fill_missing_inputs(run: EvalRun) -> None:
    """Folders written before examples.jsonl held the inputs: read them from the data the eval names, if it is
    a local file or folder still there (no hub, no LLM), cut as that task's prompts cut them."""
    if all("input" in r for r in run.rows):
        return
    s = run.summary
    cfg = s.get("config") or {}
    data = s.get("data")
    try:
        from dsp.data import load_examples
        from dsp.tasks.config import load_task

        if not data or not Path(data).exists():
            raise DSPError("not a local file or folder")
        task = load_task(s.get("task") or None).task
        examples = load_examples(
            data,
            split=s.get("split", "dev"),
            limit=cfg.get("limit"),
            input_field=cfg.get("input_field", "article"),
            target_field=cfg.get("target_field", "highlights"),
            config_name=cfg.get("data_config"),
        )
    except DSPError as e:
        run.note = f"the inputs are not recorded in this run folder, and its data {data} could not be read ({e})"
        return
    by_id = {e.id: e for e in examples}
    for r in run.rows:
        if "input" not in r and r["id"] in by_id:
            r["input"], r["reference"] = task.prompt_input(by_id[r["id"]]), by_id[r["id"]].target
    run.note = f"inputs read from {data} (this run folder was written before examples.jsonl held them)"


def check_comparable(runs: list[EvalRun]) -> None:
    """Eval folders on one page: one task, one metric, some example ids in common."""
    first = runs[0]
    for run in runs[1:]:
        if run.task != first.task:
            raise DSPError(
                f"{run.path} is an eval of task '{run.task}', {first.path} of '{first.task}': compare evals of one task"
            )
        if run.metric != first.metric:
            raise DSPError(f"{run.path} scores {run.metric}, {first.path} {first.metric}: compare evals of one metric")
        if not {r["id"] for r in run.rows} & {r["id"] for r in first.rows}:
            raise DSPError(f"{run.path} and {first.path} share no example id: compare evals of the same examples")


@dataclass
class RLRun:
    """One `dsp rl` folder: its settings, its log, its result once it ended, the dev articles it follows."""

    path: Path
    config: dict[str, Any]
    log: list[dict[str, Any]]
    result: dict[str, Any] | None
    articles: list[dict[str, Any]]


def read_rl_run(path: Path) -> RLRun:
    config = read_json(path / "config.json")
    log = []
    for lineno, row in read_jsonl(path / "log.jsonl"):
        if not isinstance(row.get("step"), int):
            raise InputError(path / "log.jsonl", lineno, "step", "missing or not an integer")
        log.append(row)
    result = read_json(path / "result.json") if (path / "result.json").is_file() else None
    articles = read_json(path / DEV_ARTICLES) if (path / DEV_ARTICLES).is_file() else []
    if not isinstance(articles, list) or not all(
        isinstance(a, dict) and isinstance(a.get("id"), str) for a in articles
    ):
        raise InputError(path / DEV_ARTICLES, None, "id", "expected a list of articles, each with a string id")
    return RLRun(path, config, log, result if isinstance(result, dict) else None, articles)
