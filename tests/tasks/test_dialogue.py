"""The MultiWOZ dialogue task: act hints, the zip reader, and every command on a small synthetic zip."""

import json
import zipfile

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.data import load_examples
from dsp.llm.testserver import TestServer
from dsp.multiwoz import act_hint, informed_values
from dsp.tasks.config import load_task
from tests.conftest import SHARED_DATA

runner = CliRunner()
ACTS = {
    "Hotel-Inform": [["Area", "east"], ["Stars", "4"]],
    "Hotel-Request": [["Price", "?"]],
    "general-reqmore": [["none", "none"]],
}


def test_act_hint_and_informed_values():
    assert act_hint(ACTS) == "[hotel] [inform] area stars [request] price [general] [reqmore]"
    assert informed_values(ACTS) == ["east", "4"]


def synthetic_zip(path, n=20):
    dialogues = {}
    for d in range(n):
        area = ["east", "west", "north", "centre"][d % 4]
        log = [
            {"text": f"I need a hotel in the {area} .", "dialog_act": {"Hotel-Inform": [["Area", area]]}},
            {
                "text": f"The Acorn Lodge is in the {area} . What price range ?",
                "dialog_act": {
                    "Hotel-Inform": [["Name", "Acorn Lodge"], ["Area", area]],
                    "Hotel-Request": [["Price", "?"]],
                },
            },
            {"text": "Cheap please .", "dialog_act": {"Hotel-Inform": [["Price", "cheap"]]}},
            {
                "text": "Booked . Anything else ?",
                "dialog_act": {"Booking-Book": [["Ref", f"REF{d}"]], "general-reqmore": [["none", "none"]]},
            },
        ]
        dialogues[f"D{d:03d}"] = {"goal": {}, "log": log}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("val.json", json.dumps(dialogues))
    return path


def test_zip_reader_splits_dialogues_and_keeps_acts(tmp_path):
    z = synthetic_zip(tmp_path / "val.json.zip")
    train = load_examples(str(z), split="train", input_field="context", target_field="response")
    dev = load_examples(str(z), split="dev", input_field="context", target_field="response")
    assert len(train) == 16 * 2 and len(dev) == 4 * 2  # 80% of the dialogues, 2 system turns each
    assert not {e.id.split("-")[0] for e in train} & {e.id.split("-")[0] for e in dev}
    assert not {e.where for e in train} & {e.where for e in dev}
    e = train[0]
    assert e.input == "User: I need a hotel in the east ." and e.target.startswith("The Acorn Lodge")
    task = load_task("multiwoz").task
    assert task.pseudo_label(e) == "[hotel] [inform] name area [request] price"
    perfect = task.score(e.target, e)
    assert (
        perfect["bleu"] == pytest.approx(100)
        and perfect["slot_recall"] == 100
        and perfect["dialogue_score"] == pytest.approx(100)
    )
    assert task.score("Sorry .", e)["slot_recall"] == 0
    prompt = task.prompt(dev[1], "[booking] [book] ref", [e])
    assert prompt.count("Dialogue:") == 2 and prompt.endswith("Acts: [booking] [book] ref\nSystem:")
    assert "User: Cheap please ." in prompt.splitlines()  # turns keep their lines


def test_real_multiwoz_zip_if_present():
    z = SHARED_DATA / "multiwoz" / "val.json.zip"
    if not z.exists():
        pytest.skip(f"MultiWOZ not found at {z} (../shared/data beside the project)")
    dev = load_examples(str(z), split="dev", input_field="context", target_field="response")
    train = load_examples(str(z), split="train", input_field="context", target_field="response", limit=50)
    assert len(dev) > 500 and len(train) == 50
    assert not {e.where for e in dev} & {e.where for e in train}
    assert all(e.fields()["acts"] is not None for e in dev[:50])


def test_every_command_on_the_dialogue_task(tmp_path):
    z = synthetic_zip(tmp_path / "val.json.zip")
    run = tmp_path / "sft"
    r = runner.invoke(
        app,
        [
            "sft",
            "--task",
            "multiwoz",
            "--data",
            str(z),
            "--output-dir",
            str(run),
            "--max-steps",
            "3",
            "--batch-size",
            "4",
            "--dev-limit",
            "4",
            "--max-input-tokens",
            "64",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{") :])["policy_type"] == "seq2seq"  # offline default for act hints
    with TestServer() as server:
        llm = ["--base-url", server.base_url, "--model", "m", "--cache", str(tmp_path / "c.sqlite")]
        r = runner.invoke(
            app,
            [
                "eval",
                "--task",
                "multiwoz",
                "--data",
                str(z),
                "--policy",
                str(run),
                "--output-dir",
                str(tmp_path / "ev"),
                "--conditions",
                "none,policy,oracle",
            ]
            + llm,
        )
        assert r.exit_code == 0, r.output
        summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
        assert summary["metric"] == "dialogue_score" and summary["complete"] == 8
        rows = [json.loads(l) for l in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
        assert all(set(r["scores"]["oracle"]) == {"bleu", "slot_recall", "dialogue_score"} for r in rows)
        assert rows[0]["hints"]["oracle"].startswith("[hotel] [inform]")
        r = runner.invoke(
            app,
            [
                "rl",
                "--task",
                "multiwoz",
                "--data",
                str(z),
                "--policy",
                str(run),
                "--output-dir",
                str(tmp_path / "rl"),
                "--iterations",
                "1",
                "--batch-size",
                "2",
                "--samples-per-input",
                "2",
                "--dev-limit",
                "2",
            ]
            + llm,
        )
        assert r.exit_code == 0, r.output
        assert "val/dialogue_score_first" in json.loads(r.stdout[r.stdout.index("{") :])
        r = runner.invoke(
            app, ["hint", "--task", "multiwoz", "--policy", str(run), "--json"], input="User: a hotel please ."
        )
        assert r.exit_code == 0, r.output
