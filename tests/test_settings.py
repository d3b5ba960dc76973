"""Settings declared once: a config dataclass gives the CLI's options and help, and `--config` loads it."""

import dataclasses
import json
import re

import pytest
import typer
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.cli.common import handle_errors
from dsp.cli.config import field_docs, settings_command
from dsp.train.configs import RLConfig

runner = CliRunner()


@dataclasses.dataclass
class Toy:
    out: str
    """Where it goes."""
    steps: int = 3
    """Steps to take [in units]."""
    rate: float | None = None
    """A rate; None: automatic."""
    loud: bool = False
    """Shout."""


def toy_app():
    toy = typer.Typer()
    seen = {}

    @toy.command()
    @handle_errors
    @settings_command(Toy, "toy")
    def run(settings: dict, name: str = "x") -> None:
        """Toy command."""
        seen["cfg"], seen["name"] = Toy(**settings), name

    return toy, seen


def test_every_field_becomes_an_option_with_its_docstring_as_help():
    toy, _ = toy_app()
    r = runner.invoke(toy, ["--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for flag, text in (
        ("--out", "Where it goes."),
        ("--steps", "Steps to take [in units]."),
        ("--rate", "A rate"),
        ("--loud", "Shout."),
        ("--config", "TOML file"),
    ):
        assert flag in r.stdout and text in r.stdout, flag


def test_file_then_flags_override_and_required_fields(tmp_path):
    toy, seen = toy_app()
    f = tmp_path / "run.toml"
    f.write_text('out = "o"\nsteps = 7\nrate = 2\nloud = true\n')
    r = runner.invoke(toy, ["--config", str(f), "--steps", "9"])
    assert r.exit_code == 0, r.output
    assert seen["cfg"] == Toy(out="o", steps=9, rate=2.0, loud=True)  # int in the file widened to float
    # a flag given explicitly wins even when it equals the default
    r = runner.invoke(toy, ["--config", str(f), "--steps", "3", "--no-loud"])
    assert seen["cfg"].steps == 3 and seen["cfg"].loud is False
    r = runner.invoke(toy, ["--steps", "2"])
    assert r.exit_code == 2 and "--out is required" in r.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ('out = "o"\nstepz = 1\n', "unknown setting 'stepz'"),
        ('out = "o"\nsteps = "many"\n', "setting 'steps' must be int"),
        ('out = "o"\nloud = 1\n', "setting 'loud' must be bool"),
        ('out = "o\n', "not valid TOML"),
    ],
)
def test_bad_config_files_are_one_line_errors_naming_file_and_key(tmp_path, text, message):
    toy, _ = toy_app()
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = runner.invoke(toy, ["--config", str(f)])
    assert r.exit_code == 2 and message in r.stderr and str(f) in r.stderr
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1


def test_every_rl_setting_is_a_flag_of_dsp_rl():
    r = runner.invoke(app, ["rl", "--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", r.stdout))
    missing = [f.name for f in dataclasses.fields(RLConfig) if "--" + f.name.replace("_", "-") not in flags]
    assert missing == []
    # the help of a field is its docstring, so the two cannot drift apart
    assert field_docs(RLConfig)["clip"] in " ".join(r.stdout.split())


def _data_and_sft_run(tmp_path):
    """A synthetic data folder, and a one-step SFT run on it in tmp_path/sft."""
    from tests.conftest import synthetic_rows

    data = tmp_path / "synth"
    data.mkdir()
    for split, n, seed in (("train", 24, 0), ("dev", 4, 1)):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(n, seed)))
    r = runner.invoke(
        app,
        [
            "sft",
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "sft"),
            "--max-steps",
            "1",
            "--batch-size",
            "4",
            "--max-input-tokens",
            "48",
            "--dev-limit",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    return data


def test_rl_run_folder_config_loads_back_and_flags_win(tmp_path):
    """A run's saved config.json reproduces the run's settings; a flag overrides one of them."""
    from dsp.llm.testserver import TestServer
    from tests.test_cli import llm_args, trained  # noqa: F401  (fixture reused below)

    data = _data_and_sft_run(tmp_path)
    toml = tmp_path / "rl.toml"
    toml.write_text(
        f'policy = "{tmp_path / "sft"}"\noutput-dir = "{tmp_path / "rl1"}"\niterations = 1\n'
        f"batch_size = 2\nsamples_per_input = 2\ndev_limit = 1\nclip = 0.3\nent_coef = 0.01\n"
    )
    with TestServer() as server:
        r = runner.invoke(app, ["rl", "--data", str(data), "--config", str(toml)] + llm_args(server, tmp_path))
        assert r.exit_code == 0, r.output
        first = json.loads((tmp_path / "rl1" / "config.json").read_text())
        assert (first["clip"], first["ent_coef"], first["iterations"], first["data"]) == (0.3, 0.01, 1, str(data))
        r = runner.invoke(
            app,
            [
                "rl",
                "--config",
                str(tmp_path / "rl1" / "config.json"),
                "--output-dir",
                str(tmp_path / "rl2"),
                "--clip",
                "0.1",
            ]
            + llm_args(server, tmp_path),
        )
        assert r.exit_code == 0, r.output
    second = json.loads((tmp_path / "rl2" / "config.json").read_text())
    assert second == {**first, "output_dir": str(tmp_path / "rl2"), "clip": 0.1}
    r = runner.invoke(app, ["sft", "--config", str(tmp_path / "rl1" / "config.json")])
    assert r.exit_code == 2 and "`dsp rl` settings" in r.stderr


def test_dsp_eval_takes_its_settings_from_a_config_file_and_flags_win(synth_dir, tmp_path):
    """EvalConfig is declared once too: every field a flag (shots_split, tfidf_split were unreachable), `--config` works."""
    from dsp.eval import EvalConfig
    from dsp.llm.testserver import TestServer
    from tests.test_cli import llm_args

    r = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "250"})
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", r.stdout))
    assert [
        f.name
        for f in dataclasses.fields(EvalConfig)
        if f.name != "extra" and "--" + f.name.replace("_", "-") not in flags
    ] == []
    toml = tmp_path / "eval.toml"
    toml.write_text(
        f'output_dir = "{tmp_path / "ev"}"\nlimit = 3\nconditions = ["none", "oracle"]\ntfidf_split = "dev"\n'
    )
    with TestServer() as server:
        r = runner.invoke(
            app, ["eval", "--data", str(synth_dir), "--config", str(toml), "--limit", "2"] + llm_args(server, tmp_path)
        )
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["config"]["limit"] == 2 and summary["config"]["conditions"] == ["none", "oracle"]
    assert summary["config"]["tfidf_split"] == "dev"


def test_a_run_config_keeps_the_llm_url_model_and_params_and_never_the_key(tmp_path):
    """`dsp rl --config RUN/config.json` repeats a run on the same LLM: base_url, model and --llm-param fields are
    saved (the key never) and read back; before, they were not saved, so the repeat quietly used the embedded LLM
    (or its default sampling)."""
    from dsp.llm.testserver import TestServer

    data = _data_and_sft_run(tmp_path)
    key = "sk-run-config-SECRET-4242"
    with TestServer() as server:
        r = runner.invoke(
            app,
            [
                "rl",
                "--data",
                str(data),
                "--policy",
                str(tmp_path / "sft"),
                "--output-dir",
                str(tmp_path / "rl1"),
                "--iterations",
                "1",
                "--batch-size",
                "2",
                "--samples-per-input",
                "2",
                "--dev-limit",
                "1",
                "--base-url",
                server.base_url,
                "--model",
                "test-model",
                "--llm-param",
                "top_k=20",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
            env={"OPENAI_API_KEY": key},
        )
        assert r.exit_code == 0, r.output
        text = (tmp_path / "rl1" / "config.json").read_text()
        saved = json.loads(text)
        assert (saved["base_url"], saved["model"]) == (server.base_url, "test-model") and key not in text
        assert saved["llm_param"] == ["top_k=20"]  # a sampling field changes the answers: the repeat sends it too
        sent = len(server.state.requests)
        r = runner.invoke(
            app,
            [
                "rl",
                "--config",
                str(tmp_path / "rl1" / "config.json"),
                "--output-dir",
                str(tmp_path / "rl2"),
                "--seed",
                "1",
                "--cache",
                str(tmp_path / "c2.sqlite"),
            ],
            env={"OPENAI_API_KEY": key, "OPENAI_BASE_URL": "", "OPENAI_MODEL": ""},
        )
        assert r.exit_code == 0, r.output
        assert len(server.state.requests) > sent  # the same server answered the repeat
        assert {b.get("top_k") for b in server.state.requests[sent:]} == {20}
    assert json.loads((tmp_path / "rl2" / "config.json").read_text())["base_url"] == server.base_url
    from dsp.llm.types import public_url  # credentials and the query (where keys hide) are never saved

    assert public_url("https://user:pw@Example.com:8443/v1/?api-key=k#x") == "https://Example.com:8443/v1/"


def test_closed_choices_agree_with_what_they_choose_from():
    from typing import get_args

    from dsp.policy.scratch import SIZES
    from dsp.settings import field_types
    from dsp.train.algos import ALGOS
    from dsp.train.configs import AlgoName, SFTConfig

    assert set(get_args(AlgoName)) == set(ALGOS)
    assert set(get_args(field_types(SFTConfig)["scratch_size"])) == set(SIZES)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_size": 0}, "--batch-size must be positive, not 0"),
        ({"clip": 1.0}, "--clip must be in (0, 1), not 1.0"),
        ({"reset_prob": 1.5}, "--reset-prob must be in [0, 1], not 1.5"),
        ({"kl_coef": -0.1}, "--kl-coef must be 0 or more, not -0.1"),
        ({"policy_temperature": 0.0}, "--policy-temperature must be above 0, not 0.0"),
        ({"lr_schedule": "cosine"}, "--lr-schedule must be one of linear, constant, not 'cosine'"),
        ({"hint_vocab": "some"}, "--hint-vocab must be one of all, input, not 'some'"),
        ({"algo": "grpo", "samples_per_input": 1}, "--algo grpo needs --samples-per-input 2 or more"),
    ],
)
def test_declared_checks_name_the_flag_in_one_line(change, message):
    from dsp.errors import DSPError
    from dsp.train.configs import RLConfig

    with pytest.raises(DSPError) as e:
        RLConfig(**{"data": "d", "output_dir": "o", "policy": "p", **change})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_closed_choice_lists_its_values_in_the_help_and_a_config_file_is_checked(tmp_path):
    r = runner.invoke(app, ["sft", "--help"], env={"COLUMNS": "250"})
    assert "One of: reference, llm, teacher." in " ".join(r.stdout.split())
    bad = tmp_path / "run.toml"
    bad.write_text('labels = "teachers"\n')
    r = runner.invoke(app, ["sft", "--config", str(bad), "--data", "d", "--output-dir", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert f"{bad}: setting 'labels' must be one of reference, llm, teacher, not 'teachers'" in r.output
    r = runner.invoke(app, ["sft", "--labels", "teachers", "--data", "d", "--output-dir", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--labels must be one of reference, llm, teacher, not 'teachers'" in r.output


def test_a_config_files_llm_params_must_be_a_list_of_strings(tmp_path):
    f = tmp_path / "rl.toml"
    f.write_text('policy = "p"\noutput_dir = "o"\nllm_param = "top_k=20"\n')
    r = runner.invoke(app, ["rl", "--config", str(f)])
    assert r.exit_code == 2 and "setting 'llm_param' must be empty or a list of strings" in r.stderr
    assert str(f) in r.stderr and "Traceback" not in r.output
