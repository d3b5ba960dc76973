"""The commands through typer's CliRunner, against a real loopback server."""

import json

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.llm.testserver import TestServer

runner = CliRunner()
SECRET = "sk-test-CLISECRET9876543210zyxw"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny SFT run shared by the tests below."""
    from tests.conftest import synthetic_rows

    root = tmp_path_factory.mktemp("cli")
    data = root / "synth"
    data.mkdir()
    for split, n, seed in (("train", 40, 0), ("dev", 8, 1)):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(n, seed)))
    r = runner.invoke(
        app,
        [
            "sft",
            "--data",
            str(data),
            "--output-dir",
            str(root / "run"),
            "--max-steps",
            "3",
            "--batch-size",
            "4",
            "--max-input-tokens",
            "48",
            "--dev-limit",
            "4",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{") :])["steps"] == 3
    return data, root / "run"


@pytest.fixture
def server():
    with TestServer() as s:
        yield s


def llm_args(server, tmp_path):
    return ["--base-url", server.base_url, "--model", "test-model", "--cache", str(tmp_path / "c.sqlite")]


def test_eval_writes_report_and_rerun_is_cached(trained, server, tmp_path):
    data, run = trained
    args = [
        "eval",
        "--data",
        str(data),
        "--policy",
        str(run),
        "--output-dir",
        str(tmp_path / "ev"),
        "--conditions",
        "none,tfidf,policy,oracle",
        "--limit",
        "6",
    ] + llm_args(server, tmp_path)
    r = runner.invoke(app, args, env={"OPENAI_API_KEY": SECRET})
    assert r.exit_code == 0, r.output
    assert "| oracle hint (pseudo-label) |" in r.stdout and "24 requests sent" in r.stdout
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    c = summary["conditions"]
    # The loopback server echoes the hint line, so oracle keywords must beat no hint here.
    assert c["oracle"]["delta_vs_none"]["mean"] > 0
    rows = [json.loads(l) for l in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and set(rows[0]["outputs"]) == {"none", "tfidf", "policy", "oracle"}
    assert len(server.state.requests) == 24
    r2 = runner.invoke(app, args, env={"OPENAI_API_KEY": SECRET})
    assert r2.exit_code == 0 and "0 requests sent, 24 cache hits" in r2.stdout
    assert len(server.state.requests) == 24
    for f in (tmp_path / "ev").iterdir():
        assert SECRET not in f.read_text()


def test_eval_call_cap_stops_cleanly(trained, server, tmp_path):
    data, _ = trained
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "ev"),
            "--conditions",
            "none,oracle",
            "--limit",
            "5",
            "--max-llm-calls",
            "4",
            "--concurrency",
            "1",
        ]
        + llm_args(server, tmp_path),
    )
    assert r.exit_code == 3
    assert "2 of 5 examples scored" in r.stdout and "--max-llm-calls=4" in r.stdout
    assert len(server.state.requests) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--data", "/no/such/dir", "--output-dir", "o"], "no such file or folder"),
        (["eval", "--data", "DATA", "--output-dir", "o", "--conditions", "none,magic"], "unknown magic"),
        (["eval", "--data", "DATA", "--output-dir", "o", "--conditions", "oracle,none,oracle"], "'oracle' twice"),
        (["eval", "--data", "DATA", "--output-dir", "o", "--conditions", "policy"], "no --policy was given"),
        (
            ["eval", "--data", "BAD", "--output-dir", "o", "--conditions", "none"],
            "bad/dev.jsonl:2: field 'article': missing",
        ),
        (["sft", "--data", "DATA", "--output-dir", "o", "--batch-size", "0"], "--batch-size must be positive"),
        (
            ["eval", "--data", "DATA", "--output-dir", "o", "--conditions", "none", "--max-cost", "1"],
            "--max-cost needs the price",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(trained, server, tmp_path, args, message):
    data, _ = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dev.jsonl").write_text('{"article": "a", "highlights": "b"}\n{"text": "a"}\n')
    args = [{"DATA": str(data), "BAD": str(bad)}.get(a, a) for a in args]
    if args[0] == "eval":
        args += llm_args(server, tmp_path)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.output


def test_unreachable_endpoint(trained, tmp_path):
    data, _ = trained
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "o"),
            "--conditions",
            "none",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ],
    )
    assert r.exit_code == 2 and "cannot reach the LLM at http://127.0.0.1:9/v1" in r.stderr


def test_missing_key_for_openai(trained, tmp_path):
    data, _ = trained
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "o"),
            "--conditions",
            "none",
            "--model",
            "gpt-4o-mini",
        ],
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
    )
    assert r.exit_code == 2 and "set OPENAI_API_KEY" in r.stderr


def test_hint_from_stdin_json_and_run(trained, server, tmp_path):
    data, run = trained
    article = "Grace Okafor opened a new museum in Quito on Monday . The museum in Quito cost millions ."
    r = runner.invoke(app, ["hint", "--policy", str(run), "--json"], input=article)
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)) == {"hint"}
    f = tmp_path / "a.txt"
    f.write_text(article)
    r = runner.invoke(
        app,
        ["hint", "--policy", str(run), "--file", str(f), "--run", "--json", "--shots-data", str(data), "--shots", "1"]
        + llm_args(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["prompt"].count("Article:") == 2 and out["prompt"].endswith("A:")
    assert out["output"] == out["hint"].strip() or out["hint"] == ""
    f.write_bytes(b"caf\xe9")
    r = runner.invoke(app, ["hint", "--policy", str(run), "--file", str(f)])
    assert r.exit_code == 2 and "not UTF-8" in r.stderr


def test_rl_against_a_loopback_llm_then_capped_resume(trained, server, tmp_path):
    data, run = trained
    args = [
        "rl",
        "--data",
        str(data),
        "--policy",
        str(run),
        "--output-dir",
        str(tmp_path / "rl"),
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--samples-per-input",
        "2",
        "--dev-limit",
        "2",
        "--save-every",
        "1",
    ] + llm_args(server, tmp_path)
    r = runner.invoke(app, args, env={"OPENAI_API_KEY": SECRET})
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout[r.stdout.index("{") :])
    assert result["iterations"] == 2 and result["llm"]["requests"] == len(server.state.requests) <= 2 + 2 * 4 + 2
    assert "val/rouge_avg_first" in result and (tmp_path / "rl" / "curves.png").exists()
    page = (tmp_path / "rl" / "report.html").read_text()  # dsp rl's report: its curves and the dev hints it followed
    assert (
        "LLM calls (whole run)" in page and "LLM cache hit rate" in page and page.count('<details class="trail"') == 2
    )
    assert f"report: {tmp_path / 'rl' / 'report.html'}" in r.stderr
    for f in (tmp_path / "rl").rglob("*.json*"):
        assert SECRET not in f.read_text()
    # more iterations under a cap of 3 new calls: stops with exit 3 and a checkpoint, says how far it got
    more = [a if a != "2" or i != args.index("--iterations") + 1 else "6" for i, a in enumerate(args)]
    r = runner.invoke(app, more + ["--resume", "--max-llm-calls", "3"])
    assert r.exit_code == 3, r.output
    stopped = json.loads(r.stdout[r.stdout.index("{") :])["stopped"]
    assert "--max-llm-calls=3" in stopped and "after 2 iterations" in stopped
    assert "--resume goes on" in stopped and "higher cap" not in stopped  # the cap is per invocation


def test_rl_with_no_hint_baseline_two_llm_samples_and_hint_hit_shaping(trained, server, tmp_path):
    """The paper's reward options through one short run: every request is the one they call for."""
    data, run = trained
    args = [
        "rl",
        "--data",
        str(data),
        "--policy",
        str(run),
        "--output-dir",
        str(tmp_path / "rl"),
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--samples-per-input",
        "2",
        "--dev-limit",
        "2",
        "--shots",
        "0",
        "--baseline",
        "no_hint",
        "--llm-samples",
        "2",
        "--llm-temperature",
        "0.7",
        "--hint-hit-coef",
        "0.5",
    ]
    r = runner.invoke(app, args + llm_args(server, tmp_path))
    assert r.exit_code == 0, r.output
    reqs = server.state.requests
    rollout = [q for q in reqs if q["temperature"] == 0.7]
    plain = [q for q in rollout if "Hint:" not in q["prompt"]]
    # 2 iterations x 2 inputs: 2 hints x 2 LLM samples each, plus the input's 2 no-hint samples
    assert len(rollout) == 2 * 2 * (2 * 2 + 2) and len(plain) == 2 * 2 * 2
    assert {q.get("seed") for q in rollout} == {None}
    rows = [json.loads(l) for l in (tmp_path / "rl" / "log.jsonl").read_text().splitlines()]
    it = [row for row in rows if "charts/reward" in row]
    assert len(it) == 2 and all("charts/hint_hit_rate" in row and "charts/llm_reward" in row for row in it)
    # dev evaluation (before and after) is greedy, one answer per hint, no baseline; unchanged hints are cached
    dev = [q for q in reqs if q["temperature"] == 0]
    assert 2 <= len(dev) <= 2 * 2 and all("Hint:" in q["prompt"] for q in dev)


def test_the_progress_bar_ends_its_line_before_the_results_table(trained, server, tmp_path):
    """stdout and stderr on one terminal (CliRunner's output interleaves them as a terminal shows them): the LLM
    progress bar's last line ends before the table starts, also where a carriage return is not honoured (CI logs)."""
    data, _ = trained
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "ev"),
            "--conditions",
            "none,oracle",
            "--limit",
            "3",
        ]
        + llm_args(server, tmp_path),
    )
    assert r.exit_code == 0, r.output
    assert "llm:" in r.output  # the bar was drawn
    before_table = r.output[: r.output.index("| hint |")]
    assert before_table.endswith("\n"), repr(before_table[-200:])
