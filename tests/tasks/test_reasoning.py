"""Chain-of-thought triggers for arithmetic problems: prompts, exact match, and the trigger search."""

import json

from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.data import Example, load_examples
from dsp.llm.testserver import TestServer
from dsp.tasks.config import load_task
from dsp.tasks.reasoning import DEFAULT_TRIGGER, load_triggers

runner = CliRunner()
PROBLEMS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", 7.0),
    ("A box holds 6 pens. How many pens are in 2 boxes?", 12.0),
    ("There are 10 birds and 4 fly away. How many are left?", 6.0),
]
# The test server echoes the question, whose last number is then the answer: solved by the first trigger.
EASY = ("A farm has 3 cows and 2 pigs, 5 animals in all. How many animals?", 5.0)


def test_prompt_score_and_numeric_answers(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, (q, a) in enumerate(PROBLEMS)))
    examples = load_examples(str(f), input_field="question", target_field="answer")
    assert examples[0].target == "7"  # numbers are read as answers
    task = load_task("multiarith").task
    assert task.prompt(examples[0], "Let's add.") == f"Q: {PROBLEMS[0][0]}\nA: Let's add."
    assert task.prompt(examples[0], None) == f"Q: {PROBLEMS[0][0]}\nA:"
    assert task.score("3 + 4 = 7. The answer is 7.", examples[0]) == {"exact_match": 100.0}
    assert task.score("The answer is 8.", examples[0]) == {"exact_match": 0.0}
    assert task.pseudo_label(examples[0]) == DEFAULT_TRIGGER
    gsm = load_task("gsm8k").task
    assert gsm.score("so 18 dollars", Example("g", "q", "She makes 9 * 2 = $18.\n#### 18")) == {"exact_match": 100.0}
    assert len(load_triggers()) >= 5 and load_triggers()[0] == DEFAULT_TRIGGER


def test_trigger_search_labels_through_sft(tmp_path):
    data = tmp_path / "arith"
    data.mkdir()
    rows = [{"id": i, "question": q, "answer": a} for i, (q, a) in enumerate((PROBLEMS + [EASY]) * 4)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with TestServer() as server:

        def args(out):
            return [
                "sft",
                "--task",
                "multiarith",
                "--data",
                str(data),
                "--labels",
                "llm",
                "--output-dir",
                str(out),
                "--max-steps",
                "2",
                "--batch-size",
                "4",
                "--max-input-tokens",
                "48",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ]

        r = runner.invoke(app, args(tmp_path / "a"))
        assert r.exit_code == 0, r.output
        distinct = {q["prompt"] for q in server.state.requests}
        searched = 3 * len(load_triggers()) + 1  # the easy question leaves the search at its first right answer
        assert len(server.state.requests) == len(distinct) == searched  # each pair asked once
        labels = [json.loads(l) for l in (tmp_path / "a" / "labels.jsonl").read_text().splitlines()]
        assert len(labels) == 16 and {l["hint"] for l in labels} <= set(load_triggers())
        assert json.loads(r.stdout[r.stdout.index("{") :])["policy_type"] == "seq2seq"  # triggers are not input words
        r = runner.invoke(app, args(tmp_path / "b"))
        assert r.exit_code == 0, r.output
        assert len(server.state.requests) == searched  # the re-run is served by the cache
        # Reasoning tasks are zero-shot by default, so the eval's prompts are the search's prompts:
        # the oracle (zero-shot-CoT) trigger was asked for these questions, and nothing is new;
        # the barely trained policy's hints are new prompts, each with one question in it.
        r = runner.invoke(
            app,
            [
                "eval",
                "--task",
                "multiarith",
                "--data",
                str(data),
                "--split",
                "train",
                "--limit",
                "3",
                "--policy",
                str(tmp_path / "a"),
                "--conditions",
                "oracle,policy",
                "--output-dir",
                str(tmp_path / "e"),
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
        )
        assert r.exit_code == 0, r.output
        new = server.state.requests[searched:]
        assert len(new) <= 3 and all(q["prompt"].count("Q:") == 1 for q in new)


def test_task_files_set_the_default_shots(tmp_path):
    assert (
        load_task("multiarith").task.shots == 0
        and load_task("cnndm").task.shots == 0
        and load_task("xsum").task.shots == 0
        and load_task("multiwoz").task.shots == 1
    )
    f = tmp_path / "t.toml"
    f.write_text('name = "t"\nkind = "reasoning"\n[prompt]\nshots = 2\n')
    assert load_task(str(f)).task.shots == 2
