"""kill -9 at several moments of `dsp eval`, `dsp sft` and `dsp rl`; then the re-run or --resume.

The commands run as real subprocesses against a real loopback server; a test fails if the
re-run's results differ from an uninterrupted run's, if an LLM answer that was cached before the
kill is asked for again, or if a half-written file is left where a result should be.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dsp.llm.testserver import TestServer
from dsp.policy import load_policy
from tests.conftest import synthetic_rows

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def dsp(*args) -> list[str]:
    return [sys.executable, "-c", "from dsp.cli import main; main()", *map(str, args)]


def start(args, tmp_path) -> subprocess.Popen:
    log = open(tmp_path / f"log-{time.time_ns()}.txt", "w")
    return subprocess.Popen(
        dsp(*args),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """kill -9 `proc` as soon as `ready()` is true; False if it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    raise TimeoutError("the condition to kill never came")


def run(args, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        dsp(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )


def cached_prompts(cache: Path) -> set[str]:
    if not cache.exists():
        return set()
    with sqlite3.connect(cache) as db:
        return {json.loads(r[0]).get("prompt") for r in db.execute("SELECT request FROM answers")}


def no_partial_json(folder: Path) -> None:
    """Every result file parses. Dot-named temporaries (a checkpoint or file being written when the kill
    came) may stay behind: they are never read, and the next save clears them."""
    for f in folder.rglob("*.json*"):
        if any(part.startswith(".") for part in f.relative_to(folder).parts):
            continue
        if f.name.endswith(".jsonl"):
            [json.loads(line) for line in f.read_text().splitlines()]
        else:
            json.loads(f.read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("crashdata")
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(24, 0)))
    (d / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(120, 3)))
    return d


@pytest.mark.parametrize("kill_after", [20, 90, 200])
def test_eval_killed_then_rerun_repeats_no_cached_call(data, tmp_path, kill_after):
    args = ["eval", "--data", data, "--conditions", "none,oracle", "--concurrency", "4", "--model", "m"]
    with TestServer(latency=0.01) as straight:
        assert (
            run(
                args
                + [
                    "--base-url",
                    straight.base_url,
                    "--output-dir",
                    tmp_path / "straight",
                    "--cache",
                    tmp_path / "c0.sqlite",
                ],
                tmp_path,
            ).returncode
            == 0
        )
    cache, out = tmp_path / "c.sqlite", tmp_path / "out"
    with TestServer(latency=0.01) as server:
        proc = start(args + ["--base-url", server.base_url, "--output-dir", out, "--cache", cache], tmp_path)
        assert kill_when(proc, lambda: len(server.state.requests) >= kill_after)
        before = cached_prompts(cache)
        assert 0 < len(before) < 240
        seen = len(server.state.requests)
        r = run(args + ["--base-url", server.base_url, "--output-dir", out, "--cache", cache], tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        again = [q["prompt"] for q in server.state.requests[seen:]]
    assert not set(again) & before  # no answer that was cached before the kill is bought again
    a = [json.loads(l) for l in (tmp_path / "straight" / "examples.jsonl").read_text().splitlines()]
    b = [json.loads(l) for l in (out / "examples.jsonl").read_text().splitlines()]
    assert a == b
    no_partial_json(out)


def weights(path):
    p = load_policy(str(path))
    return [t.detach().clone() for t in p.parameters()]


@pytest.mark.parametrize("kill_at_step", [2, 5])
def test_sft_killed_then_resumed_matches_uninterrupted(data, tiny_encoder, tmp_path, kill_at_step):
    args = [
        "sft",
        "--data",
        data,
        "--policy",
        tiny_encoder,
        "--policy-type",
        "extractive",
        "--max-steps",
        "8",
        "--batch-size",
        "4",
        "--save-every",
        "1",
        "--eval-every",
        "4",
        "--dev-limit",
        "4",
        "--hint-words",
        "3",
        "--lr",
        "1e-3",
    ]
    assert run(args + ["--output-dir", tmp_path / "straight"], tmp_path).returncode == 0
    out = tmp_path / "killed"
    proc = start(args + ["--output-dir", out], tmp_path)
    log = out / "log.jsonl"
    assert kill_when(proc, lambda: log.exists() and len(log.read_text().splitlines()) >= kill_at_step)
    no_partial_json(out)
    r = run(args + ["--output-dir", out, "--resume"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for x, y in zip(weights(tmp_path / "straight"), weights(out)):
        assert torch.allclose(x, y, atol=1e-6)
    steps = [json.loads(l)["step"] for l in log.read_text().splitlines()]
    assert steps == list(range(1, 9))  # none lost, none logged twice
    assert not list(out.glob(".checkpoint.tmp-*"))


def test_rl_killed_then_resumed_matches_uninterrupted(data, tiny_encoder, tmp_path):
    from dsp.policy.extractive import ExtractivePolicy

    torch.manual_seed(0)
    ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3).save(tmp_path / "start")
    args = [
        "rl",
        "--data",
        data,
        "--policy",
        tmp_path / "start",
        "--iterations",
        "6",
        "--batch-size",
        "2",
        "--samples-per-input",
        "2",
        "--save-every",
        "1",
        "--dev-limit",
        "2",
        "--lr",
        "1e-3",
        "--model",
        "m",
    ]
    with TestServer() as server:
        llm = ["--base-url", server.base_url]
        assert (
            run(
                args + llm + ["--output-dir", tmp_path / "straight", "--cache", tmp_path / "c0.sqlite"], tmp_path
            ).returncode
            == 0
        )
        out, cache = tmp_path / "killed", tmp_path / "c.sqlite"
        proc = start(args + llm + ["--output-dir", out, "--cache", cache], tmp_path)
        log = out / "log.jsonl"
        assert kill_when(proc, lambda: log.exists() and len(log.read_text().splitlines()) >= 4)  # dev + 3 iterations
        before, seen = cached_prompts(cache), len(server.state.requests)
        r = run(args + llm + ["--output-dir", out, "--cache", cache, "--resume"], tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        again = [q["prompt"] for q in server.state.requests[seen:]]
    assert not set(again) & before
    for x, y in zip(weights(tmp_path / "straight"), weights(out)):
        assert torch.allclose(x, y, atol=1e-6)
    assert [json.loads(l)["step"] for l in (out / "log.jsonl").read_text().splitlines()] == list(range(0, 7))
    no_partial_json(out)


def test_two_processes_share_one_cache_and_refuse_one_run_folder(data, tmp_path):
    cache = tmp_path / "shared.sqlite"
    with TestServer(latency=0.01) as server:
        common = [
            "eval",
            "--data",
            data,
            "--concurrency",
            "4",
            "--model",
            "m",
            "--base-url",
            server.base_url,
            "--cache",
            cache,
        ]
        # No completion is answered until the third process has tried folder a: a holds it all that time.
        server.state.gate.clear()
        a = start(common + ["--conditions", "none,oracle", "--output-dir", tmp_path / "a"], tmp_path)
        b = start(common + ["--conditions", "none,tfidf", "--output-dir", tmp_path / "b"], tmp_path)
        lock = tmp_path / "a" / ".dsp.lock"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip() == str(a.pid)) and time.time() < deadline:
            assert a.poll() is None, "a ended before taking its folder"
            time.sleep(0.02)
        assert lock.read_text().strip() == str(a.pid)
        try:
            same = run(common + ["--conditions", "none", "--output-dir", tmp_path / "a"], tmp_path)
            assert a.poll() is None  # a was mid-run, holding the folder, for the whole attempt
        finally:
            server.state.gate.set()
        assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    assert same.returncode == 2, same.stdout + same.stderr
    assert "another dsp process" in same.stderr and "is writing to this folder" in same.stderr
    distinct = {q["prompt"] for q in server.state.requests}
    assert len(cached_prompts(cache)) == len(distinct)  # no entry lost between the two writers
    for name in ("a", "b"):
        assert len((tmp_path / name / "examples.jsonl").read_text().splitlines()) == 120
