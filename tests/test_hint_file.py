"""Batch `dsp hint --input-file ... --output ...`: batched, resumable, with --run against a loopback LLM."""

import asyncio
import csv
import json

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.hint_file import hint_file
from dsp.llm.testserver import TestServer
from dsp.tasks.config import load_task
from tests.conftest import synthetic_rows
from tests.test_serve import CountingPolicy, policy_dir  # noqa: F401  (the shared tiny policy fixture)

runner = CliRunner()


@pytest.fixture
def inputs(tmp_path):
    rows = synthetic_rows(10, seed=3)
    for i, r in enumerate(rows):
        r["article"] += f" Item {i} ."  # distinct inputs, distinct prompts
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batched_through_the_policy(policy_dir, inputs, tmp_path):  # noqa: F811
    from dsp.data import load_examples
    from dsp.policy import load_policy

    path, rows = inputs
    policy = CountingPolicy(load_policy(str(policy_dir)))
    examples = load_examples(str(path), need_target=False)
    result = asyncio.run(
        hint_file(policy, load_task("cnndm").task, examples, tmp_path / "out.jsonl", batch_size=4, progress=False)
    )
    assert result.written == 10 and policy.calls == [4, 4, 2]
    out = rows_of(tmp_path / "out.jsonl")
    assert [r["hint"] for r in out] == [policy.policy.generate([r["article"]])[0] for r in rows]
    assert [r["highlights"] for r in out] == [r["highlights"] for r in rows]


def test_cli_resumes_after_a_kill_and_reads_csv(policy_dir, inputs, tmp_path):  # noqa: F811
    path, rows = inputs
    out = tmp_path / "out.jsonl"
    args = ["hint", "--policy", str(policy_dir), "--input-file", str(path), "--output", str(out), "--batch-size", "3"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "10 rows written" in r.stdout, r.output
    whole = out.read_text()
    lines = whole.splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][:20])  # killed while writing row 5
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "6 rows written to" in r.stdout and "4 already there" in r.stdout, r.output
    assert out.read_text() == whole
    r = runner.invoke(app, args)
    assert "0 rows written" in r.stdout and out.read_text() == whole

    table = tmp_path / "in.csv"
    with table.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text"])
        w.writeheader()
        w.writerows({"id": r["id"], "text": r["article"]} for r in rows)
    r = runner.invoke(
        app,
        [
            "hint",
            "--policy",
            str(policy_dir),
            "--input-file",
            str(table),
            "--output",
            str(tmp_path / "csv.jsonl"),
            "--input-field",
            "text",
        ],
    )
    assert r.exit_code == 0, r.output
    assert [x["hint"] for x in rows_of(tmp_path / "csv.jsonl")] == [json.loads(l)["hint"] for l in lines]


def test_cli_run_stops_at_the_cap_then_resumes(policy_dir, inputs, tmp_path):  # noqa: F811
    path, _ = inputs
    out = tmp_path / "out.jsonl"
    with TestServer() as server:
        base = [
            "hint",
            "--policy",
            str(policy_dir),
            "--input-file",
            str(path),
            "--output",
            str(out),
            "--run",
            "--batch-size",
            "4",
            "--base-url",
            server.base_url,
            "--model",
            "test-model",
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--concurrency",
            "1",
        ]
        r = runner.invoke(app, base + ["--max-llm-calls", "6"])
        assert r.exit_code == 3 and "--max-llm-calls=6" in r.stderr, r.output
        assert len(rows_of(out)) == 6  # the answered ones, each flushed as it came
        r = runner.invoke(app, base)
        assert r.exit_code == 0 and "4 rows written" in r.stdout and "6 already there" in r.stdout, r.output
        assert len(server.state.requests) == 10  # no input was asked twice
    got = rows_of(out)
    assert len({g["id"] for g in got}) == 10
    for g in got:  # the loopback LLM echoes the hint line: the output is the hint, so the hint was in the prompt
        assert f"Hint: {g['hint']}\nA:" in g["prompt"] and g["output"] == " ".join(g["hint"].split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input-file", "IN"], "--input-file and --output go together"),
        (["--input-file", "IN", "--output", "o.jsonl", "some text"], "not both"),
        (["--input-file", "/no/such.jsonl", "--output", "o.jsonl"], "no such file"),
        (["--input-file", "IN", "--output", "o.jsonl", "--batch-size", "0"], "--batch-size must be positive"),
    ],
)
def test_bad_batch_arguments_are_one_line(policy_dir, inputs, tmp_path, args, message):  # noqa: F811
    path, _ = inputs
    args = [str(path) if a == "IN" else str(tmp_path / a) if a == "o.jsonl" else a for a in args]
    r = runner.invoke(app, ["hint", "--policy", str(policy_dir), *args])
    assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.output


def test_repeated_ids_are_hinted_once_per_record_and_resume(policy_dir, inputs, tmp_path, caplog):  # noqa: F811
    """Issue 29.5: a file holding a record twice (the shipped dev.jsonl does) is hinted record by record,
    with a warning naming the repeat; the resume counts a repeated id's rows, so a kill loses nothing."""
    path, rows = inputs
    rows = rows[:4] + [rows[1], rows[4]]  # line 5 repeats line 2's id
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    args = ["hint", "--policy", str(policy_dir), "--input-file", str(path), "--output", str(out), "--batch-size", "2"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "6 rows written" in r.stdout, r.output
    assert any("in.jsonl:5" in m and "'s1'" in m and "in.jsonl:2" in m for m in caplog.messages), caplog.messages
    whole = out.read_text()
    assert [json.loads(line)["id"] for line in whole.splitlines()] == [r["id"] for r in rows]
    out.write_text("".join(whole.splitlines(keepends=True)[:4]))  # killed after row 4
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "2 rows written" in r.stdout and "4 already there" in r.stdout, r.output
    assert out.read_text() == whole
    out.write_text("".join(whole.splitlines(keepends=True)[:5]))  # killed after the repeat's row
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "1 rows written" in r.stdout and out.read_text() == whole, r.output


def test_readme_batch_hint_example_on_the_shipped_dev_file(policy_dir, cnndm_dir, tmp_path):  # noqa: F811
    """The README's `dsp hint --policy runs/sft --input-file ../shared/data/cnndm/dev.jsonl --output hints.jsonl
    --run`, with a tiny real policy and the loopback LLM: every record of the file gets its row."""
    dev = cnndm_dir / "dev.jsonl"
    records = dev.read_text().splitlines()
    out = tmp_path / "hints.jsonl"
    with TestServer() as server:
        r = runner.invoke(
            app,
            [
                "hint",
                "--policy",
                str(policy_dir),
                "--input-file",
                str(dev),
                "--output",
                str(out),
                "--run",
                "--base-url",
                server.base_url,
                "--model",
                "test-model",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
        )
        assert r.exit_code == 0, r.output
        assert f"{len(records)} rows written" in r.stdout
    got = rows_of(out)
    assert [g["id"] for g in got] == [json.loads(line)["id"] for line in records]
    assert all(g["hint"] and g["output"] for g in got)
