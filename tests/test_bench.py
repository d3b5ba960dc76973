"""Every benchmark script imports, and answers `--help`, as the module a reader runs (`python -m bench.NAME`
from the repository root): a script that no longer matches the code it measures fails here, not on the day
someone reruns it."""

from __future__ import annotations

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
