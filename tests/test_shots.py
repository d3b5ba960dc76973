"""Few-shot examples are never an example being evaluated (issue 29.2): with one --data file every split is
that file, so the shots must come from outside the evaluated range (and the command says so)."""

import json

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from tests.conftest import synthetic_rows
from tests.test_cli import (
    llm_args,
    server,  # noqa: F401  (the loopback LLM fixture)
)
from tests.test_serve import policy_dir  # noqa: F401  (the shared tiny policy fixture)

runner = CliRunner()


def llm(server, tmp_path) -> list[str]:  # noqa: F811
    """The loopback LLM's flags, and one shot: cnndm is zero-shot by default, and these tests are about where
    the shot comes from."""
    return llm_args(server, tmp_path) + ["--shots", "1"]


@pytest.fixture
def one_file(tmp_path):
    rows = synthetic_rows(12, seed=5)
    for i, r in enumerate(rows):
        r["article"] += f" Item {i} ."  # every article distinct
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def shot_articles(prompt: str) -> tuple[list[str], str]:
    """(the shots' article lines, the query's article line) of a summarization prompt."""
    blocks = prompt.split("\n\n")
    return [b.split("\n")[0] for b in blocks[:-1]], blocks[-1].split("\n")[0]


def assert_no_own_answer(requests, rows_of_shots=None):
    assert requests
    for q in requests:
        shots, query = shot_articles(q["prompt"])
        assert query not in shots, q["prompt"]
        if rows_of_shots is not None:
            assert shots == [f"Article: {r['article']}" for r in rows_of_shots]


def test_eval_of_one_file_takes_its_shots_outside_the_evaluated_range(one_file, server, tmp_path, caplog):
    path, rows = one_file
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(path),
            "--output-dir",
            str(tmp_path / "ev"),
            "--limit",
            "4",
            "--conditions",
            "none,oracle",
        ]
        + llm(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    assert_no_own_answer(server.state.requests, rows_of_shots=[rows[4]])  # the first example past the 4 evaluated
    assert any("one.jsonl:5" in m and "outside" in m for m in caplog.messages), caplog.messages
    assert len((tmp_path / "ev" / "examples.jsonl").read_text().splitlines()) == 4


def test_eval_of_a_whole_file_leaves_the_shot_out_of_the_evaluated(one_file, server, tmp_path, caplog):
    path, rows = one_file
    r = runner.invoke(
        app,
        ["eval", "--data", str(path), "--output-dir", str(tmp_path / "ev"), "--conditions", "none"]
        + llm(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    assert_no_own_answer(server.state.requests, rows_of_shots=[rows[0]])
    ids = [json.loads(line)["id"] for line in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert ids == [r["id"] for r in rows[1:]]
    assert any("one.jsonl:1" in m and "not evaluated" in m for m in caplog.messages), caplog.messages


def test_eval_with_a_train_split_keeps_its_first_shot_and_says_nothing(synth_dir, server, tmp_path, caplog):
    r = runner.invoke(
        app,
        ["eval", "--data", str(synth_dir), "--output-dir", str(tmp_path / "ev"), "--limit", "3", "--conditions", "none"]
        + llm(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    first_train = json.loads((synth_dir / "train.jsonl").read_text().splitlines()[0])
    assert_no_own_answer(server.state.requests, rows_of_shots=[first_train])
    assert not [m for m in caplog.messages if "few-shot" in m]


def test_rl_on_one_file_never_scores_a_dev_or_rollout_input_with_its_own_answer(
    one_file,
    policy_dir,  # noqa: F811
    server,  # noqa: F811
    tmp_path,
):
    path, _ = one_file
    r = runner.invoke(
        app,
        [
            "rl",
            "--data",
            str(path),
            "--policy",
            str(policy_dir),
            "--output-dir",
            str(tmp_path / "rl"),
            "--iterations",
            "2",
            "--batch-size",
            "2",
            "--samples-per-input",
            "2",
            "--dev-limit",
            "3",
        ]
        + llm(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    assert_no_own_answer(server.state.requests)


def test_hint_run_skips_a_shot_that_is_the_input_itself(one_file, policy_dir, server, tmp_path):  # noqa: F811
    path, rows = one_file
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "train.jsonl").write_text(path.read_text())
    article = tmp_path / "a.txt"
    article.write_text(rows[0]["article"] + "\n")
    r = runner.invoke(
        app,
        ["hint", "--policy", str(policy_dir), "--file", str(article), "--run", "--json", "--shots-data", str(shots)]
        + llm(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    assert_no_own_answer(server.state.requests, rows_of_shots=[rows[1]])
    out = tmp_path / "hints.jsonl"
    r = runner.invoke(
        app,
        [
            "hint",
            "--policy",
            str(policy_dir),
            "--input-file",
            str(path),
            "--output",
            str(out),
            "--run",
            "--shots-data",
            str(path),
        ]
        + llm(server, tmp_path),
    )
    assert r.exit_code == 2 and "few-shot" in r.stderr and r.stderr.count("\n") == 1, r.output
