"""A resume keeps the run's own settings (issue 29.1): one that changes a setting that shapes the checkpoint
or its data is refused in one line naming the setting, exit 2, before anything is written; config.json is
rewritten only once the run goes on; budgets and how often to evaluate or save may change."""

import json

from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from tests.test_cli import llm_args, server  # noqa: F401  (the loopback LLM fixture and its flags)
from tests.test_serve import policy_dir  # noqa: F401  (the shared tiny extractive policy)

runner = CliRunner()


def one_line(r, *parts):
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output, r.output
    for part in parts:
        assert part in r.stderr, r.output


def test_rl_resume_with_another_algo_is_refused_and_the_run_goes_on(
    synth_dir,
    policy_dir,  # noqa: F811
    server,  # noqa: F811
    tmp_path,
):
    run = tmp_path / "rl"
    llm = llm_args(server, tmp_path)
    args = [
        "rl",
        "--data",
        str(synth_dir),
        "--policy",
        str(policy_dir),
        "--output-dir",
        str(run),
        "--iterations",
        "1",
        "--batch-size",
        "2",
        "--samples-per-input",
        "2",
        "--dev-limit",
        "2",
        "--save-every",
        "1",
    ] + llm
    assert runner.invoke(app, args).exit_code == 0
    saved = (run / "config.json").read_bytes()
    r = runner.invoke(app, args + ["--resume", "--algo", "ppo"])
    one_line(r, str(run), "--algo", "'ppo'", "'grpo'")
    assert (run / "config.json").read_bytes() == saved  # nothing written
    r = runner.invoke(app, ["sft", "--config", str(run / "config.json")])  # not even by another command
    assert r.exit_code == 2 and "`dsp rl` settings" in r.stderr
    # a damaged checkpoint stops the resume before it goes on: config.json keeps the last run's settings
    head = run / "checkpoint" / "policy" / "head.safetensors"
    kept = head.read_bytes()
    head.unlink()
    r = runner.invoke(app, ["rl", "--config", str(run / "config.json"), "--resume", "--iterations", "2"] + llm)
    one_line(r, "head.safetensors is missing")
    assert (run / "config.json").read_bytes() == saved
    head.write_bytes(kept)
    r = runner.invoke(app, ["rl", "--config", str(run / "config.json"), "--resume", "--iterations", "2"] + llm)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{") :])["iterations"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["iterations"] == 2 and config["algo"] == "grpo"


def test_sft_resume_with_another_lr_is_refused(synth_dir, tiny_encoder, tmp_path):
    run = tmp_path / "sft"
    args = [
        "sft",
        "--data",
        str(synth_dir),
        "--output-dir",
        str(run),
        "--policy",
        str(tiny_encoder),
        "--policy-type",
        "extractive",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--dev-limit",
        "4",
        "--max-input-tokens",
        "48",
    ]
    assert runner.invoke(app, args).exit_code == 0
    saved = (run / "config.json").read_bytes()
    one_line(runner.invoke(app, args + ["--resume", "--lr", "1e-3"]), "--lr")
    one_line(runner.invoke(app, args + ["--resume", "--policy-type", "seq2seq"]), "--policy-type")
    assert (run / "config.json").read_bytes() == saved
    r = runner.invoke(app, args + ["--resume", "--max-steps", "3"])  # a budget may change
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["max_steps"] == 3


def test_distill_resume_with_another_temperature_is_refused(synth_dir, policy_dir, tmp_path):  # noqa: F811
    run = tmp_path / "student"
    args = [
        "distill",
        "--teacher",
        str(policy_dir),
        "--data",
        str(synth_dir),
        "--output-dir",
        str(run),
        "--student",
        "layers:1",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--dev-limit",
        "4",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    saved = (run / "config.json").read_bytes()
    assert json.loads(saved)["command"] == "distill"
    one_line(runner.invoke(app, args + ["--resume", "--temperature", "3"]), "--temperature")
    one_line(
        runner.invoke(app, ["sft", "--data", str(synth_dir), "--output-dir", str(run), "--resume"]),
        "`dsp distill` run folder",
    )
    assert (run / "config.json").read_bytes() == saved
    r = runner.invoke(app, args + ["--resume", "--max-steps", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["command"] == "distill"
