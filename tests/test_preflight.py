"""Bad data, task or policy is reported as such, before the LLM is started or reached."""

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app

runner = CliRunner()
UNREACHABLE = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]


def one_line(r, exit_code, *parts):
    assert r.exit_code == exit_code, r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output, r.stderr
    for p in parts:
        assert p in r.stderr, r.stderr


def test_eval_missing_data_does_not_start_the_embedded_llm(monkeypatch, tmp_path):
    # a server command that cannot even be filled in: starting the embedded LLM at all fails on it
    monkeypatch.setenv("DSP_EMBEDDED_SERVER", "llama-server --port {port} --mystery {nope}")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path / "missing-folder"),
            "--output-dir",
            str(tmp_path / "o"),
            "--conditions",
            "none",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    one_line(r, 2, "missing-folder: no such file or folder")
    assert "DSP_EMBEDDED_SERVER" not in r.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--data", "MISSING", "--output-dir", "OUT", "--conditions", "none"],
        ["rl", "--data", "MISSING", "--policy", "DATA", "--output-dir", "OUT"],
        ["sft", "--data", "MISSING", "--output-dir", "OUT", "--labels", "llm"],
    ],
)
def test_missing_data_is_reported_before_an_unreachable_llm(command, synth_dir, tmp_path):
    subs = {"MISSING": str(tmp_path / "missing-folder"), "OUT": str(tmp_path / "o"), "DATA": str(synth_dir)}
    r = runner.invoke(app, [subs.get(a, a) for a in command] + UNREACHABLE + ["--cache", str(tmp_path / "c.sqlite")])
    one_line(r, 2, "missing-folder: no such file or folder")


def test_missing_policy_is_reported_before_an_unreachable_llm(synth_dir, tmp_path):
    r = runner.invoke(
        app,
        [
            "rl",
            "--data",
            str(synth_dir),
            "--policy",
            str(tmp_path / "runs" / "nothing"),
            "--output-dir",
            str(tmp_path / "o"),
        ]
        + UNREACHABLE,
    )
    one_line(r, 2, "no policy found at", "dsp sft --data DATA --output-dir runs/sft")
    r = runner.invoke(
        app,
        ["eval", "--data", str(synth_dir), "--conditions", "none,policy", "--output-dir", str(tmp_path / "o")]
        + UNREACHABLE,
    )
    one_line(r, 2, "no --policy was given")


@pytest.mark.parametrize("policy", ["no-such-folder", "runs/no/such-folder", "./no-such-folder"])
def test_hint_with_no_policy_there_says_so_and_how_to_train_one(policy, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["hint", "--policy", policy, "some article text"])
    one_line(r, 2, f"no policy found at '{policy}'", "`dsp sft --data DATA --output-dir runs/sft`")
    assert "Repo id" not in r.stderr and "--policy scratch" not in r.stderr
