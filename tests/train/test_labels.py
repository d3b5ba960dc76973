"""`dsp sft --labels llm`: the LLM writes the hint labels; cached, capped, no references needed."""

import json

from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.llm.testserver import TestServer
from dsp.tasks.labelling import parse_phrases
from tests.conftest import synthetic_rows

runner = CliRunner()


def test_parse_phrases_keeps_what_occurs_in_the_input():
    source = "Alice Moreau opened the new museum in Lisbon on Monday. It cost millions."
    answer = "Alice Moreau; new museum\n- Lisbon, Paris; cost millions; alice moreau; the; cost mill"
    assert parse_phrases(answer, source) == "Alice Moreau; new museum; Lisbon; cost millions"
    assert parse_phrases("", source) == ""


def test_sft_with_llm_labels_caches_and_stops_at_the_cap(tiny_encoder, tmp_path):
    data = tmp_path / "texts"
    data.mkdir()
    for split, n in (("train", 20), ("dev", 4)):
        rows = [{"id": f"{split}{i}", "text": r["article"]} for i, r in enumerate(synthetic_rows(n, len(split)))]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # no references at all
    with TestServer() as server:
        base = [
            "sft",
            "--data",
            str(data),
            "--input-field",
            "text",
            "--labels",
            "llm",
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
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ]
        r = runner.invoke(app, base + ["--output-dir", str(tmp_path / "a")])
        assert r.exit_code == 0, r.output
        assert len(server.state.requests) == 24 and "Article:" in server.state.requests[0]["prompt"]
        labels = [json.loads(l) for l in (tmp_path / "a" / "labels.jsonl").read_text().splitlines()]
        assert len(labels) == 24 and all(l["hint"] and ".jsonl:" in l["where"] for l in labels)
        r = runner.invoke(app, base + ["--output-dir", str(tmp_path / "b")])  # a re-run is served by the cache
        assert r.exit_code == 0 and len(server.state.requests) == 24
        r = runner.invoke(
            app,
            base
            + [
                "--output-dir",
                str(tmp_path / "c"),
                "--cache",
                str(tmp_path / "new.sqlite"),
                "--max-llm-calls",
                "5",
                "--concurrency",
                "1",
            ],
        )
        assert r.exit_code == 3, r.output
        assert "labelled 5 of 24 inputs" in r.stderr and len(server.state.requests) == 29
