"""Every benchmark script imports, and answers `--help`, as the module a reader runs (`python -m bench.NAME`
from the repository root): a script that no longer matches the code it measures fails here, not on the day
someone reruns it."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")


def test_every_script_is_found():
    assert len(SCRIPTS) >= 15 and {"testbed", "paired", "llm_throughput", "eval_scaling"} <= set(SCRIPTS)


def test_no_script_edits_sys_path():
    edits = [name for name in SCRIPTS if "sys.path" in (ROOT / "bench" / f"{name}.py").read_text(encoding="utf-8")]
    assert edits == []


def _help(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess]:
    # 2-core machines: a few interpreters at once, each importing the script and what it measures
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(SCRIPTS, pool.map(_help, SCRIPTS)))


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_and_answers_help(helps, name):
    done = helps[name]
    assert done.returncode == 0, done.stderr[-1500:]
    assert "usage:" in done.stdout.lower()


def test_plot_study_times_per_run_from_its_log(tmp_path, capsys):
    from bench.plot_study import print_times

    def row(step, calls, wait):
        return {
            "step": step,
            "charts/llm_calls": calls,
            "time/llm_wait": wait,
            "time/update": 2.0,
            "time/sample": 0.5,
            "time/logprobs": 0.5,
        }

    for name, rows in {
        # the dev check's line at step 0; the first iteration's calls include the check's 20
        "remax": [
            {"step": 0, "val/rouge_avg": 14.8},
            row(1, 38, 30.0),
            row(2, 56, 31.0),
            row(3, 74, 99.0),
            row(4, 92, 33.0),
        ],
        "grpo": [{"step": 0, "val/rouge_avg": 14.8}],  # stopped before its first iteration
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print_times(tmp_path, [("ReMax", "remax"), ("GRPO", "grpo"), ("absent", "rloo")])
    out = capsys.readouterr().out
    assert "| ReMax | 4 | 18 | 32.0 | 2.0 | 1.0 |" in out  # medians: one slow iteration moves nothing
    assert "GRPO" not in out and "absent" not in out
