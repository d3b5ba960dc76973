"""Real eval folders for the report tests: `dsp eval` through CliRunner against the loopback test LLM."""

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.llm.testserver import TestServer
from tests.conftest import synthetic_rows

runner = CliRunner()
MARKUP = "<script>alert('owned')</script> and </div><b>bold</b>"
KEY = "sk-report-KEY-0123456789abcdef"


@pytest.fixture(scope="session")
def eval_runs(tmp_path_factory, tiny_encoder):
    """Two eval folders of the same dev articles (one holds markup): A with every condition, one LLM call failed
    for good and the API key given as a flag; B with a policy of other hint lengths, on 6 of A's 8 articles."""
    from dsp.policy.extractive import ExtractivePolicy

    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    data.mkdir()
    dev = synthetic_rows(8, seed=3)
    dev[2]["article"] = f"Officials said {MARKUP} in Perth . " + dev[2]["article"]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(30, seed=0)))
    (data / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    for name, words in (("p3", 3), ("p2", 2)):
        ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=words).save(root / name)
    with TestServer() as server:
        llm = ["--base-url", server.base_url, "--model", "test-model", "--cache", str(root / "cache.sqlite")]
        # concurrency 1: the first call (article 0, no hint) gets the 400, which is never retried
        server.state.faults = [(400, {}, '{"error": {"message": "bad request"}}')]
        a = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(data),
                "--policy",
                str(root / "p3"),
                "--output-dir",
                str(root / "A"),
                "--conditions",
                "none,tfidf,policy,oracle",
                "--concurrency",
                "1",
                "--api-key",
                KEY,
            ]
            + llm,
        )
        b = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(data),
                "--policy",
                str(root / "p2"),
                "--output-dir",
                str(root / "B"),
                "--conditions",
                "none,tfidf,policy",
                "--limit",
                "6",
            ]
            + llm,
        )
    assert a.exit_code == 4, a.output  # the failed call: report written, then exit 4
    assert b.exit_code == 0, b.output
    return {"A": root / "A", "B": root / "B", "data": data, "outputs": (a, b)}


def read_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def synthetic_eval(folder: Path, n: int, seed: int = 0) -> Path:
    """An eval folder of n examples at the demo's sizes (400-word inputs, 60-word answers, 4 conditions), its
    summary.json made by dsp.eval.summarize: for page size and scale, where the LLM's answers do not matter."""
    from dsp.eval import EvalConfig, summarize
    from dsp.io import write_json_atomic, write_jsonl_atomic
    from dsp.tasks import SummarizationTask

    rng = random.Random(seed)
    vocab = [f"{rng.choice('bcdfgklmnprst')}{rng.choice('aeiou')}{rng.choice('nrstl')}{i}" for i in range(3000)]
    text = lambda k: " ".join(rng.choice(vocab) for _ in range(k))  # noqa: E731
    conditions = ("none", "tfidf", "policy", "oracle")
    rows = []
    for i in range(n):
        article = text(400)
        hints = {c: None if c == "none" else "; ".join(rng.sample(article.split(), 8)) for c in conditions}
        scores = {c: {"rouge_avg": rng.uniform(5, 45)} for c in conditions}
        rows.append(
            {
                "id": f"x{i}",
                "input": article,
                "reference": text(60),
                "hints": hints,
                "outputs": {c: text(60) for c in conditions},
                "scores": scores,
                "errors": {},
                "failed": [],
            }
        )
    cfg = EvalConfig(data="synthetic", output_dir=str(folder), conditions=conditions)
    summary = summarize(cfg, SummarizationTask(), rows) | {"task": "cnndm", "model": "synthetic", "llm": {}}
    write_jsonl_atomic(folder / "examples.jsonl", rows)
    write_json_atomic(folder / "summary.json", summary)
    return folder
