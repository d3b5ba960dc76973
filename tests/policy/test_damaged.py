"""A damaged or half-written policy folder is one line naming the folder and what is wrong, exit 2 (issue 29.4)."""

import json
import shutil

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from tests.policy.test_policies import tiny_policy
from tests.test_serve import policy_dir  # noqa: F401  (the shared tiny extractive policy)

runner = CliRunner()


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def remove(name):
    return lambda folder: (folder / name).unlink()


DAMAGE = {
    "no head": (remove("head.safetensors"), "head.safetensors is missing"),
    "no weights": (remove("model.safetensors"), "model.safetensors is missing"),
    "no marker": (remove("dsp_policy.json"), "no dsp_policy.json"),
    "cut weights": (lambda f: truncate(f / "model.safetensors"), "model.safetensors is damaged"),
    "cut head": (lambda f: truncate(f / "head.safetensors", 0.9), "head.safetensors is damaged"),
    "broken marker": (lambda f: (f / "dsp_policy.json").write_text('{"kind": "extr'), "dsp_policy.json is damaged"),
    "no tokenizer": (remove("tokenizer.json"), "tokenizer.json is missing"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_extractive_folder_is_one_line_naming_it(policy_dir, synth_dir, tmp_path, case):  # noqa: F811
    folder = tmp_path / "p"
    shutil.copytree(policy_dir, folder)
    damage, message = DAMAGE[case]
    damage(folder)
    for command in (
        ["hint", "--policy", str(folder), "some text"],
        [
            "eval",
            "--data",
            str(synth_dir),
            "--policy",
            str(folder),
            "--output-dir",
            str(tmp_path / "e"),
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ],
    ):  # never reached: the policy is checked first
        r = runner.invoke(app, command)
        assert r.exit_code == 2, (command, r.output)
        assert str(folder) in r.stderr and message in r.stderr and r.stderr.count("\n") == 1, r.output


def test_damaged_seq2seq_folder_is_one_line(tmp_path):
    tiny_policy().save(tmp_path / "s")
    truncate(tmp_path / "s" / "model.safetensors")
    r = runner.invoke(app, ["hint", "--policy", str(tmp_path / "s"), "some text"])
    assert r.exit_code == 2 and "model.safetensors is damaged" in r.stderr and r.stderr.count("\n") == 1, r.output


def test_interrupted_sft_run_folder_says_resume_it(policy_dir, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(policy_dir, run / "checkpoint" / "policy")
    (run / "checkpoint" / "state.json").write_text('{"step": 2}')
    (run / "config.json").write_text(json.dumps({"command": "sft", "data": "d", "output_dir": str(run)}))
    r = runner.invoke(app, ["hint", "--policy", str(run), "some text"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert str(run) in r.stderr and "training did not finish: resume it with `dsp sft --resume`" in r.stderr
    assert str(run / "checkpoint" / "policy") in r.stderr  # or use its checkpoint
    r = runner.invoke(app, ["hint", "--policy", str(run / "checkpoint" / "policy"), "some text"])
    assert r.exit_code == 0, r.output
