import asyncio
import json

from dsp.data import load_examples
from dsp.eval import EvalConfig, run_eval
from dsp.llm import AsyncLLMClient, LLMCache, LLMConfig
from dsp.llm.testserver import TestServer
from dsp.policy import TfidfPolicy


def test_tfidf_idf_comes_from_the_train_split(synth_dir, tmp_path):
    train = [e.input for e in load_examples(str(synth_dir), split="train")]
    dev = [e.input for e in load_examples(str(synth_dir), split="dev", limit=6)]
    shot = train[:1]
    expected = TfidfPolicy.fit(train, k=10).generate(dev)
    # Guard: fitting on the one few-shot article gives other hints, so this test can fail.
    assert TfidfPolicy.fit(shot, k=10).generate(dev) != expected

    cfg = EvalConfig(data=str(synth_dir), output_dir=str(tmp_path / "ev"), conditions=("none", "tfidf"), limit=6)

    async def go(base_url):
        client = AsyncLLMClient(LLMConfig(model="m", base_url=base_url, api_key="x"), LLMCache(tmp_path / "c.sqlite"))
        try:
            return await run_eval(cfg, client)
        finally:
            await client.aclose()

    with TestServer() as server:
        asyncio.run(go(server.base_url))
    rows = [json.loads(l) for l in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert [r["hints"]["tfidf"] for r in rows] == expected


def test_commands_without_a_policy_do_not_import_torch():
    # torch and transformers take seconds to import; an eval of no-hint and oracle rows needs neither
    import subprocess
    import sys

    code = (
        "import sys, dsp.cli.commands, dsp.eval, dsp.llm.session, dsp.tasks.config, dsp.policy; "
        "dsp.policy.TfidfPolicy; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eval_with_some_calls_failed_for_good_writes_the_report_then_exits_4(synth_dir, tmp_path):
    from typer.testing import CliRunner

    import dsp.cli.commands  # noqa: F401  (registers the commands)
    from dsp.cli import app

    with TestServer() as server:
        # concurrency 1: the first call gets the 400 (never retried), the other 7 are answered
        server.state.faults = [(400, {}, '{"error": {"message": "bad request"}}')]
        r = CliRunner().invoke(
            app,
            [
                "eval",
                "--data",
                str(synth_dir),
                "--output-dir",
                str(tmp_path / "ev"),
                "--limit",
                "4",
                "--conditions",
                "none,oracle",
                "--shots",
                "0",
                "--concurrency",
                "1",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
        )
    assert r.exit_code == 4, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "1 LLM call(s) failed for good" in errors[0] and "HTTP 400" in errors[0]
    assert "Traceback" not in r.output and "| oracle hint" in r.stdout  # the table is printed before the exit
    rows = [json.loads(l) for l in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert [row["failed"] for row in rows] == [["none"], [], [], []]
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["failed_calls"] == 1 and summary["complete"] == 3
    assert "Failed for good: 1 LLM calls" in (tmp_path / "ev" / "report.md").read_text()


def test_cache_namespace_option_shares_answers_across_urls(synth_dir, tmp_path):
    from typer.testing import CliRunner

    import dsp.cli.commands  # noqa: F401  (registers the commands)
    from dsp.cli import app

    def ev(server, *extra):
        return CliRunner().invoke(
            app,
            [
                "eval",
                "--data",
                str(synth_dir),
                "--output-dir",
                str(tmp_path / "ev"),
                "--limit",
                "2",
                "--conditions",
                "none",
                "--shots",
                "0",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
                *extra,
            ],
        )

    with TestServer() as one, TestServer() as two:
        assert ev(one).exit_code == 0 and ev(two).exit_code == 0
        assert len(one.state.requests) == len(two.state.requests) == 2  # by default each URL is its own namespace
        assert ev(one, "--cache-namespace", "mine").exit_code == 0
        r = ev(two, "--cache-namespace", "mine")
        assert r.exit_code == 0 and "2 cache hits" in r.stdout
        assert len(one.state.requests) == 4 and len(two.state.requests) == 2


def test_chat_endpoint_sends_the_instruction_as_system_message_and_completions_stays_byte_identical(
    synth_dir, tmp_path
):
    from typer.testing import CliRunner

    import dsp.cli.commands  # noqa: F401  (registers the commands)
    from dsp.cli import app

    def ev(server, endpoint):
        return CliRunner().invoke(
            app,
            [
                "eval",
                "--data",
                str(synth_dir),
                "--output-dir",
                str(tmp_path / endpoint),
                "--limit",
                "1",
                "--conditions",
                "oracle",
                "--shots",
                "1",
                "--endpoint",
                endpoint,
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
        )

    train = load_examples(str(synth_dir), split="train", limit=1)[0]
    dev = load_examples(str(synth_dir), split="dev", limit=1)[0]
    instruction = "Q: Summarize the above article briefly in 2-3 sentences based on the hint."
    from dsp.tasks.config import load_task

    task = load_task("cnndm").task
    hint, shot_hint = task.pseudo_label(dev), task.pseudo_label(train)
    with TestServer() as server:
        assert ev(server, "chat").exit_code == 0
        assert ev(server, "completions").exit_code == 0
    chat, completions = server.state.requests
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "user"]
    system, shot, shot_answer, query = (m["content"] for m in chat["messages"])
    assert system == instruction
    assert (
        query == f"Article: {dev.input}\nHint: {hint}\nA:" and shot == f"Article: {train.input}\nHint: {shot_hint}\nA:"
    )
    assert shot_answer == train.target
    # the completions prompt is the template whole, as it was before the chat split (its cache keys unchanged)
    assert completions["prompt"] == (
        f"Article: {train.input}\n{instruction}\nHint: {shot_hint}\nA: {train.target}\n\n"
        f"Article: {dev.input}\n{instruction}\nHint: {hint}\nA:"
    )


def _eval_with_rows(tmp_path, server, rows):
    from typer.testing import CliRunner

    import dsp.cli.commands  # noqa: F401  (registers the commands)
    from dsp.cli import app

    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return CliRunner().invoke(
        app,
        ["eval", "--data", str(data), "--output-dir", str(tmp_path / "ev"), "--conditions", "none,oracle"]
        + ["--shots", "0", "--base-url", server.base_url, "--model", "m", "--cache", str(tmp_path / "c.sqlite")],
    )


def test_a_repeated_record_is_scored_once_and_the_report_is_written(tmp_path, caplog):
    """CNN/DailyMail's dev file holds the same article twice (lines 138 and 190): an eval of its first 200 used to
    score it twice, then fail at the report, which pairs rows by id, after every call had been paid for."""
    from tests.conftest import synthetic_rows

    rows = synthetic_rows(4, seed=3)
    with TestServer() as server:
        r = _eval_with_rows(tmp_path, server, [*rows, rows[1]])
        assert r.exit_code == 0, r.output
        assert len(server.state.requests) == 2 * 4  # the copy costs no call
    assert f"{tmp_path / 'dev.jsonl'}:5 (a copy of {tmp_path / 'dev.jsonl'}:2): a repeated record is scored once" in (
        caplog.text
    )
    ids = [json.loads(line)["id"] for line in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert ids == [row["id"] for row in rows]
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["examples"] == 4
    assert (tmp_path / "ev" / "report.html").exists()


def test_one_id_on_two_different_records_is_a_one_line_error_before_any_call(tmp_path):
    from tests.conftest import synthetic_rows

    rows = synthetic_rows(3, seed=3)
    other = {**rows[2], "id": rows[0]["id"]}
    with TestServer() as server:
        r = _eval_with_rows(tmp_path, server, [*rows[:2], other])
        assert server.state.requests == []
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert f"{tmp_path / 'dev.jsonl'}:3: field 'id': '{rows[0]['id']}' is also the id of" in errors[0]
