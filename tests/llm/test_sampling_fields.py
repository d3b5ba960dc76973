"""Sampling fields of a server's own (`repeat_penalty`, `top_k`, ...): a task's [generation] and --llm-param."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.errors import DSPError, LLMError
from dsp.llm import AsyncLLMClient, LLMCache, LLMConfig, LLMRequest
from dsp.llm.cache import cache_key
from dsp.llm.sampling import parse_llm_params
from dsp.llm.testserver import TestServer
from dsp.tasks.config import load_task


def ask(server, tmp_path, request, **cfg):
    async def go():
        c = AsyncLLMClient(LLMConfig(model="m", base_url=server.base_url, **cfg), LLMCache(tmp_path / "c.sqlite"))
        try:
            return await c.complete(request), c.usage
        finally:
            await c.aclose()

    return asyncio.run(go())


def test_fields_reach_the_body_and_the_cache_key(tmp_path):
    req = LLMRequest(prompt="Article: a b\nSummary:", max_tokens=4, extra=(("top_k", 40),))
    with TestServer() as server:
        ask(server, tmp_path, req, extra_params={"repeat_penalty": 1.1})
        body = server.state.requests[-1]
        assert body["top_k"] == 40 and body["repeat_penalty"] == 1.1
        # the same fields: answered from the cache
        _, usage = ask(server, tmp_path, req, extra_params={"repeat_penalty": 1.1})
        assert usage.cache_hits == 1 and len(server.state.requests) == 1
        # another value is another answer
        _, usage = ask(server, tmp_path, req, extra_params={"repeat_penalty": 1.3})
        assert usage.requests == 1 and server.state.requests[-1]["repeat_penalty"] == 1.3
        # the flag wins over the request's own value of the same field
        ask(server, tmp_path, req, extra_params={"top_k": 5})
        assert server.state.requests[-1]["top_k"] == 5


def test_a_plain_request_keeps_the_cache_key_it_had():
    # Caches written before sampling fields existed must stay valid: no field, no change in the key.
    client = AsyncLLMClient(LLMConfig(model="m", base_url="http://127.0.0.1:9/v1"))
    wire = client._wire(LLMRequest(prompt="p"))
    assert cache_key(wire) == cache_key({k: v for k, v in wire.items() if k != "extra"})
    assert cache_key(wire) != cache_key(client._wire(LLMRequest(prompt="p", extra=(("top_k", 1),))))


def test_a_server_that_refuses_a_field_says_which_and_is_not_retried(tmp_path):
    with TestServer() as server:
        server.state.refuse_fields = ("dry_multiplier",)
        with pytest.raises(LLMError) as e:
            ask(server, tmp_path, LLMRequest(prompt="a\nb"), extra_params={"dry_multiplier": 0.8})
        assert len(server.state.requests) == 1
    msg = str(e.value)
    assert "\n" not in msg and "HTTP 400" in msg and "refuses the sampling field 'dry_multiplier'" in msg


def test_llm_param_values_are_json_else_text():
    assert parse_llm_params(["repeat_penalty=1.1", 'samplers=["top_k", "min_p"]', "grammar=root ::= x", "ok=true"]) == {
        "repeat_penalty": 1.1,
        "samplers": ["top_k", "min_p"],
        "grammar": "root ::= x",
        "ok": True,
    }
    with pytest.raises(DSPError, match="expected KEY=VALUE"):
        parse_llm_params(["repeat_penalty"])
    with pytest.raises(DSPError, match="'temperature' is set by dsp itself"):
        parse_llm_params(["temperature=0.7"])


def test_task_file_generation_extras_become_request_fields(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('name = "t"\n[generation]\nmax_tokens = 32\nrepeat_penalty = 1.1\nsamplers = ["top_k"]\n')
    task = load_task(str(f)).task
    assert task.sampling == {"repeat_penalty": 1.1, "samplers": ["top_k"]}
    from dsp.data import Example

    req = task.request(Example("x", "Some article text .", "ref"), "hint")
    assert dict(req.extra) == {"repeat_penalty": 1.1, "samplers": ["top_k"]} and req.max_tokens == 32


@pytest.mark.parametrize(
    "line, message",
    [
        ("temperature = 0.5", "'temperature' is set by dsp itself"),
        ("when = 1979-05-27", "'when' must be a JSON value"),
    ],
)
def test_task_file_refuses_what_cannot_pass_through(tmp_path, line, message):
    f = tmp_path / "t.toml"
    f.write_text(f'name = "t"\n[generation]\n{line}\n')
    with pytest.raises(DSPError, match=message) as e:
        load_task(str(f))
    assert str(f) in str(e.value)


def test_eval_flag_reaches_the_server_and_a_bad_flag_exits_2(synth_dir, tmp_path):
    def invoke(server, *extra):
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
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
                *extra,
            ],
        )

    with TestServer() as server:
        r = invoke(server, "--llm-param", "min_p=0.05", "--llm-param", "top_k=20")
        assert r.exit_code == 0, r.output
        assert {(b["min_p"], b["top_k"]) for b in server.state.requests} == {(0.05, 20)}
        sent = len(server.state.requests)
        r = invoke(server, "--llm-param", "seed=3")
        assert r.exit_code == 2 and "'seed' is set by dsp itself" in r.output
        assert len(server.state.requests) == sent
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["examples"] == 2
