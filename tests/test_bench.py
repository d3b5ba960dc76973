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


def test_plot_study_times_count_a_resumed_step_once_and_skip_the_leg_boundary(tmp_path, capsys):
    from bench.plot_study import iteration_times, print_times

    def row(step, calls, wait):
        return {
            "step": step,
            "charts/llm_calls": calls,
            "time/llm_wait": wait,
            "time/update": 2.0,
            "time/sample": 0.5,
            "time/logprobs": 0.5,
        }

    run = tmp_path / "remax"
    run.mkdir()
    # steps 1-3, then a resumed leg that repeats step 3 (logged twice) and counts its calls from 0 again
    rows = [row(1, 18, 30.0), row(2, 36, 31.0), row(3, 54, 99.0), row(3, 18, 32.0), row(4, 36, 33.0)]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n" + '{"step": 0, "val/rouge_avg": 1}\n')
    times = iteration_times(run / "log.jsonl")
    assert [r["step"] for r in times] == [1, 2, 3, 4]
    assert times[2]["time/llm_wait"] == 32.0  # the later line of step 3 wins
    print_times(tmp_path, [("ReMax", "remax"), ("absent", "grpo")])
    out = capsys.readouterr().out
    # calls per iteration: 18, 18, and the leg boundary (36 -> 18, once step 3 is the later line) left out
    assert "| ReMax | 4 | 18 | 31.5 | 2.0 | 1.0 |" in out
    assert "absent" not in out
