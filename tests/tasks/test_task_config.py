"""Tasks as TOML files: built-in ones, a user's own end to end, and one-line errors naming the key."""

import json

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.data import Example
from dsp.errors import DSPError
from dsp.llm.testserver import TestServer
from dsp.tasks import SummarizationTask
from dsp.tasks.config import builtin_tasks, load_task

runner = CliRunner()
EX = Example(
    id="1", input="Alice Moreau opened a museum in Lisbon. It cost millions.", target="Alice Moreau opened a museum."
)


def test_builtin_cnndm_is_the_summarization_task():
    assert {"cnndm", "gsm8k", "multiarith", "multiwoz", "xsum"} == set(builtin_tasks())
    loaded = load_task("cnndm")
    reference = SummarizationTask()
    assert loaded.task.prompt(EX, "Alice Moreau; museum", [EX]) == reference.prompt(EX, "Alice Moreau; museum", [EX])
    assert loaded.task.pseudo_label(EX) == reference.pseudo_label(EX)
    assert (loaded.data.source, loaded.data.config, loaded.data.input_field) == (
        "abisee/cnn_dailymail",
        "3.0.0",
        "article",
    )


def test_xsum_asks_for_one_sentence():
    loaded = load_task("xsum")
    assert "in one sentence" in loaded.task.prompt(EX, "museum") and loaded.task.stop[0] == "\n"
    assert loaded.task.shots == 0 and loaded.task.stop_repeats  # the test bed's choice (BENCHMARKS.md)
    assert (loaded.data.input_field, loaded.data.target_field) == ("document", "summary")


USER_TASK = """
name = "reviews"
[data]
source = "{data}"
input_field = "text"
target_field = "gist"
[prompt]
with_hint_text = "Review: {{input}}\\nKeywords: {{hint}}\\nGist: {{target}}"
plain_text = "Review: {{input}}\\nGist: {{target}}"
[generation]
max_tokens = 32
stop = ["\\n"]
[reward]
metric = "rouge1"
"""


@pytest.fixture
def user_task(tmp_path):
    from tests.conftest import synthetic_rows

    data = tmp_path / "reviews"
    data.mkdir()
    for split, n, seed in (("train", 24, 0), ("dev", 6, 1)):
        rows = [{"text": r["article"], "gist": r["highlights"]} for r in synthetic_rows(n, seed)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "reviews.toml"
    path.write_text(USER_TASK.format(data=data))
    return path


def test_a_users_task_through_every_command(user_task, tiny_encoder, tmp_path):
    loaded = load_task(str(user_task))
    assert loaded.task.prompt(EX, "museum").endswith("Keywords: museum\nGist:") and loaded.task.metric == "rouge1"
    run = tmp_path / "sft"
    r = runner.invoke(
        app,
        [
            "sft",
            "--task",
            str(user_task),
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
        ],
    )
    assert r.exit_code == 0, r.output
    with TestServer() as server:
        llm = ["--base-url", server.base_url, "--model", "m", "--cache", str(tmp_path / "c.sqlite")]
        r = runner.invoke(
            app,
            [
                "eval",
                "--task",
                str(user_task),
                "--policy",
                str(run),
                "--output-dir",
                str(tmp_path / "ev"),
                "--limit",
                "3",
                "--conditions",
                "none,policy,oracle",
            ]
            + llm,
        )
        assert r.exit_code == 0, r.output
        summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
        assert summary["metric"] == "rouge1" and summary["task"] == "reviews" and summary["complete"] == 3
        prompts = [q["prompt"] for q in server.state.requests]
        assert all(p.endswith("Gist:") for p in prompts) and sum("\nKeywords: " in p for p in prompts) == 6
        r = runner.invoke(
            app,
            [
                "rl",
                "--task",
                str(user_task),
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
        assert "val/rouge1_first" in json.loads(r.stdout[r.stdout.index("{") :])
        r = runner.invoke(
            app,
            ["hint", "--task", str(user_task), "--policy", str(run), "--json", "--run"] + llm,
            input="Grace Okafor opened a museum in Quito.",
        )
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["prompt"].startswith("Review: Grace Okafor")


@pytest.mark.parametrize(
    "text, message",
    [
        ('name = "t"\n[prompt]\nwith_hnt = "x"\n', "unknown key 'prompt.with_hnt'"),
        ('name = "t"\n[generation]\nmax_tokens = "many"\n', "key 'generation.max_tokens' must be int"),
        ('name = "t"\n[generation]\nmax_tokens = 0\n', "key 'generation.max_tokens' must be positive"),
        ('[data]\nsource = "x"\n', "missing key 'name'"),
        ('name = "t"\n[rewards]\nmetric = "x"\n', "unknown section [rewards]"),
        ('name = "t"\n[reward]\nmetric = "bleu9"\n', "key 'reward.metric' must be one of"),
        ('name = "t"\n[prompt]\nwith_hint_text = "A: {input} {target}"\n', "has no {hint} placeholder"),
        ('name = "t"\n[prompt]\nplain_text = "A: {target} {input}"\n', "must end with {target}"),
        (
            'name = "t"\n[prompt]\nwith_hint_text = "A: {input} {hint} {foo}\\nB: {target}"\n',
            "unknown placeholder {foo}",
        ),
        ('name = "t"\nmax_tokens = 5\n', "unknown key 'max_tokens'"),
        ('name = "t\n', "not valid TOML"),
        (
            'name = "t"\nkind = "dialogue"\n[hint]\nmax_phrase_words = 3\n',
            "key 'hint.max_phrase_words' is not used by a dialogue task",
        ),
        ('name = "t"\nkind = "poetry"\n', "key 'kind' must be one of dialogue, reasoning, summarization"),
    ],
)
def test_bad_task_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DSPError, match="bad.toml"):
        load_task(str(path))
    r = runner.invoke(app, ["sft", "--task", str(path), "--data", "x", "--output-dir", str(tmp_path / "o")])
    assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.output


def test_unknown_builtin_task_lists_the_known_ones(tmp_path):
    r = runner.invoke(app, ["eval", "--task", "nosuch", "--output-dir", str(tmp_path)])
    assert r.exit_code == 2 and "built-in tasks are cnndm, gsm8k, multiarith, multiwoz, xsum," in r.stderr


def test_a_new_kind_is_one_class(tmp_path):
    """A Task subclass that names its kind registers itself: a task file can use it with no table edited."""
    from dataclasses import dataclass

    from dsp.tasks import Task, task_kinds

    @dataclass
    class TitleTask(Task):
        kind = "title-test"
        labeller = "first_words"
        metrics = ("title_len",)
        name: str = "titles"

        def pseudo_label(self, example):
            return " ".join(example.input.split()[:2])

        def score(self, output, example):
            return {"title_len": float(len(output.split()))}

    assert task_kinds()["title-test"] is TitleTask
    path = tmp_path / "titles.toml"
    path.write_text(
        'name = "titles"\nkind = "title-test"\n[prompt]\n'
        'with_hint_text = "Text: {input}\\nStart: {hint}\\nTitle: {target}"\n'
        'plain_text = "Text: {input}\\nTitle: {target}"\n'
    )
    task = load_task(str(path)).task
    assert isinstance(task, TitleTask) and task.metric == "title_len"
    assert task.request(EX, task.pseudo_label(EX)).prompt == "Text: " + EX.input + "\nStart: Alice Moreau\nTitle:"
    assert task.score("A b c", EX) == {"title_len": 3.0}


def test_task_id_field_names_the_ids_of_eval_and_batch_hint(user_task, tiny_encoder, tmp_path):
    """Issue 29.6: `[data] id_field` reaches the loader: eval rows and batch hints carry the records' own ids."""
    data = tmp_path / "reviews"
    for split in ("train", "dev"):
        rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]
        (data / f"{split}.jsonl").write_text(
            "".join(json.dumps({**r, "review_no": f"R-{i}"}) + "\n" for i, r in enumerate(rows))
        )
    task = tmp_path / "ids.toml"
    task.write_text(
        user_task.read_text().replace('target_field = "gist"', 'target_field = "gist"\nid_field = "review_no"')
    )
    assert load_task(str(task)).data.id_field == "review_no"
    policy = tmp_path / "policy"
    from dsp.policy.extractive import ExtractivePolicy

    ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3).save(policy)
    with TestServer() as server:
        llm = ["--base-url", server.base_url, "--model", "m", "--cache", str(tmp_path / "c.sqlite")]
        r = runner.invoke(
            app,
            ["eval", "--task", str(task), "--output-dir", str(tmp_path / "ev"), "--limit", "3", "--conditions", "none"]
            + llm,
        )
        assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["R-0", "R-1", "R-2"]
    r = runner.invoke(
        app,
        [
            "hint",
            "--task",
            str(task),
            "--policy",
            str(policy),
            "--input-file",
            str(data / "dev.jsonl"),
            "--output",
            str(tmp_path / "hints.jsonl"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["id"] for line in (tmp_path / "hints.jsonl").read_text().splitlines()] == [
        f"R-{i}" for i in range(6)
    ]


def test_every_data_key_is_listed_in_the_task_docstring():
    import dsp.tasks.config as config

    for section, keys in config.SCHEMA.items():
        for key in keys:
            assert f"{key} =" in config.__doc__, (section, key)


def test_an_unknown_placeholder_in_a_template_file_is_refused_naming_it(tmp_path):
    (tmp_path / "mine.txt").write_text("Text: {input}\nTopic: {topic}\nHint: {hint}\nSummary: {target}\n")
    (tmp_path / "t.toml").write_text('name = "t"\n[prompt]\nwith_hint = "mine.txt"\n')
    with pytest.raises(DSPError, match=r"mine\.txt: unknown placeholder \{topic\}"):
        load_task(str(tmp_path / "t.toml"))
