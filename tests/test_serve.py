"""`dsp serve` on a free loopback port (real uvicorn, real tiny policy), called with the real openai SDK,
with the project's test server as the upstream LLM."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import unquote

import openai
import pytest
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.data import load_examples
from dsp.llm.testserver import TestServer
from dsp.llm.types import LLMConfig
from dsp.serve.app import HINT_HEADER, ServeOptions
from dsp.serve.server import Listen, serve
from dsp.tasks.config import load_task

UPSTREAM_KEY = "sk-upstream-SECRET0123456789abcdef"
TOKEN = "serve-token-XYZ987654321"
ARTICLE = (
    "Grace Okafor opened a new museum in Quito on Monday . The museum in Quito cost millions . "
    "Officials declined to comment further ."
)


class CountingPolicy:
    """The real policy, with a count of its forward passes (generate calls) and their sizes."""

    def __init__(self, policy):
        self.policy, self.kind, self.calls = policy, policy.kind, []

    def generate(self, inputs, *, batch_size=16):
        self.calls.append(len(inputs))
        return self.policy.generate(inputs, batch_size=batch_size)


@pytest.fixture(scope="module")
def policy_dir(tiny_encoder, tmp_path_factory):
    from dsp.policy.extractive import ExtractivePolicy

    path = tmp_path_factory.mktemp("policy")
    ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3).save(path)
    return path


@pytest.fixture
def policy(policy_dir):
    from dsp.policy import load_policy

    return CountingPolicy(load_policy(str(policy_dir)))


@pytest.fixture
def upstream():
    with TestServer() as s:
        yield s


@contextlib.contextmanager
def running(policy, upstream_url, tmp_path, token=None, log=None, max_retries=0, **llm):
    """`dsp serve`'s library entry point in a thread; yields its base URL, stops it on exit."""
    cfg = LLMConfig(
        model="test-model", base_url=upstream_url, api_key=UPSTREAM_KEY, max_retries=max_retries, timeout=5.0, **llm
    )
    options = ServeOptions(model=None, token=token)
    started, box = threading.Event(), {}

    def ready(url, server):
        box.update(url=url, server=server)
        started.set()

    def target():
        try:
            serve(
                policy,
                load_task("cnndm").task,
                cfg,
                tmp_path / "cache.sqlite",
                options,
                Listen("127.0.0.1", 0),
                log_path=log,
                ready=ready,
            )
        except BaseException as e:  # noqa: BLE001  (shown by the test that waits)
            box["error"] = e
            started.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert started.wait(60) and "error" not in box, box.get("error")
    try:
        yield box["url"]
    finally:
        box["server"].should_exit = True
        thread.join(30)
        assert not thread.is_alive()


def sdk(url, key="none"):
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


def test_completions_and_chat_carry_the_same_hint_as_dsp_hint(policy, policy_dir, upstream, tmp_path):
    r = CliRunner().invoke(app, ["hint", "--policy", str(policy_dir), "--json"], input=ARTICLE)
    assert r.exit_code == 0, r.output
    cli_hint = json.loads(r.stdout)["hint"]
    assert cli_hint
    with running(policy, upstream.base_url, tmp_path) as url:
        client = sdk(url)
        raw = client.completions.with_raw_response.create(model="test-model", prompt=ARTICLE)
        done = raw.parse()
        assert done.dsp["hint"] == cli_hint == unquote(raw.headers[HINT_HEADER])
        # The upstream got the task's with-hint prompt; its echo of the hint line is the answer.
        sent = upstream.state.requests[-1]
        assert sent["prompt"].startswith("Article: " + ARTICLE) and f"Hint: {cli_hint}\nA:" in sent["prompt"]
        task = load_task("cnndm").task
        assert sent["stop"] == list(task.stop) and sent["max_tokens"] == task.max_tokens == 96
        assert done.choices[0].text == " ".join(cli_hint.split())
        assert done.usage.prompt_tokens > 0 and done.model == "test-model"

        chat = client.chat.completions.create(
            model="test-model",
            messages=[{"role": "system", "content": "You summarize."}, {"role": "user", "content": ARTICLE}],
        )
        assert chat.dsp["hint"] == cli_hint and chat.choices[0].message.content == done.choices[0].text
        assert chat.dsp["cached"] is True  # the same prompt: the client's cache answered
        assert [m.id for m in client.models.list().data] == ["test-model"]

        # The app's own template with a {hint} slot, the raw input in extra_body.
        own = client.completions.create(
            model="test-model",
            prompt="Notes: {hint}\nWrite one line:",
            extra_body={"dsp": {"input": ARTICLE}},
            max_tokens=5,
        )
        assert upstream.state.requests[-1]["prompt"] == f"Notes: {cli_hint}\nWrite one line:"
        assert own.dsp["hint"] == cli_hint and own.choices[0].text == " ".join(cli_hint.split()[:5])
        with pytest.raises(openai.BadRequestError, match=r"\{hint\} slot"):
            client.completions.create(model="test-model", prompt="no slot", extra_body={"dsp": {"input": ARTICLE}})


def test_a_chat_upstream_keeps_the_conversation(policy, upstream, tmp_path):
    with running(policy, upstream.base_url, tmp_path, endpoint="chat") as url:
        r = sdk(url).chat.completions.create(
            model="test-model",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Earlier question"},
                {"role": "assistant", "content": "Earlier answer"},
                {"role": "user", "content": ARTICLE},
            ],
        )
    sent = upstream.state.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[:3] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Earlier question"},
        {"role": "assistant", "content": "Earlier answer"},
    ]
    assert sent[3]["content"].startswith("Article: " + ARTICLE) and f"Hint: {r.dsp['hint']}" in sent[3]["content"]


def test_streaming_passes_the_upstream_pieces_through(policy, upstream, tmp_path):
    with running(policy, upstream.base_url, tmp_path) as url:
        client = sdk(url)
        whole = client.completions.create(model="test-model", prompt=ARTICLE, temperature=0.5)  # not cached
        chunks = list(
            client.completions.create(model="test-model", prompt=ARTICLE + " More.", stream=True, temperature=0.5)
        )
        texts = [c.choices[0].text for c in chunks if c.choices]
        assert len(texts) > 2  # word by word, as the upstream sent them, plus the closing chunk
        assert upstream.state.requests[-1]["stream"] is True
        assert chunks[-1].dsp["hint"] == whole.dsp["hint"]
        assert "".join(texts).rsplit(" #", 1)[0] == whole.choices[0].text.rsplit(" #", 1)[0]

        chat = list(
            client.chat.completions.create(
                model="test-model", stream=True, messages=[{"role": "user", "content": ARTICLE}]
            )
        )
        assert chat[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
        assert text == " ".join(whole.dsp["hint"].split())


def test_an_upstream_that_ignores_stream_true_is_passed_through_as_one_piece(policy, upstream, tmp_path):
    upstream.state.ignore_stream = True  # plain JSON to `stream: true`, as some OpenAI-compatible servers answer
    with running(policy, upstream.base_url, tmp_path) as url:
        client = sdk(url)
        chunks = list(client.completions.create(model="test-model", prompt=ARTICLE, stream=True))
        chat = list(
            client.chat.completions.create(
                model="test-model", stream=True, messages=[{"role": "user", "content": ARTICLE + " Chat."}]
            )
        )
    assert upstream.state.requests[0]["stream"] is True
    texts = [c.choices[0].text for c in chunks if c.choices]
    hint = chunks[-1].dsp["hint"]
    assert texts[0] == " ".join(hint.split()) and texts[1:] == [""]  # the whole answer, then the closing chunk
    assert "".join(c.choices[0].delta.content or "" for c in chat if c.choices) == " ".join(
        chat[-1].dsp["hint"].split()
    )


def test_32_concurrent_requests_share_forward_passes(policy, upstream, tmp_path):
    from tests.conftest import synthetic_rows

    articles = [r["article"] + f" Story {i} ." for i, r in enumerate(synthetic_rows(32, seed=7))]
    with running(policy, upstream.base_url, tmp_path) as url:

        async def all_at_once():
            client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=60)
            try:
                return await asyncio.gather(
                    *(client.completions.create(model="test-model", prompt=a) for a in articles)
                )
            finally:
                await client.close()

        answers = asyncio.run(all_at_once())
        text = urllib.request.urlopen(url.removesuffix("/v1") + "/metrics").read().decode()
    assert sum(policy.calls) == 32 and len(policy.calls) < 32 and max(policy.calls) > 1
    # Batched or not, each hint is the one `dsp hint` writes for that input alone.
    assert [a.dsp["hint"] for a in answers] == [policy.policy.generate([a])[0] for a in articles]
    assert f"dsp_policy_forward_calls_total {len(policy.calls)}" in text
    assert f"dsp_hint_batch_size_count {len(policy.calls)}" in text and "dsp_hint_batch_size_sum 32.0" in text
    assert 'dsp_requests_total{route="/v1/completions",status="200"} 32' in text
    assert "dsp_llm_requests_total 32" in text and len(upstream.state.requests) == 32


@pytest.mark.parametrize(
    "body, message",
    [
        ({"model": "test-model"}, "prompt: Field required"),
        ({"model": "test-model", "prompt": 7}, "prompt: Input should be a valid string"),
        ({"model": "gpt-5", "prompt": ARTICLE}, "unknown model 'gpt-5'"),
        ({"model": "test-model", "prompt": "x" * 100_001}, "longer than this server's limit"),
        ({"model": "test-model", "prompt": "   "}, "the input is empty"),
        ({"model": "test-model", "prompt": ARTICLE, "n": 2}, "n: Input should be less than or equal to 1"),
        (
            {"model": "test-model", "prompt": ARTICLE, "max_tokens": "many"},
            "max_tokens: Input should be a valid integer",
        ),
        ({"model": "test-model", "messages": []}, "messages: List should have at least 1 item"),
        ({"model": "test-model", "messages": [{"role": "system", "content": "hi"}]}, "no user message"),
    ],
)
def test_bad_requests_get_400_in_openai_shape(policy, upstream, tmp_path, body, message):
    path = "/chat/completions" if "messages" in body else "/completions"
    with running(policy, upstream.base_url, tmp_path) as url:
        client = sdk(url)
        with pytest.raises(openai.BadRequestError) as e:
            client.post(path, body=body, cast_to=object)
        error = e.value.body
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
        assert message in error["message"] and "\n" not in error["message"]
        assert client.completions.create(model="test-model", prompt=ARTICLE).choices  # still serving
    assert not any(ARTICLE in r.get("prompt", "") for r in upstream.state.requests[:-1])  # nothing bad went up


def test_token_is_required_and_never_shown(policy, upstream, tmp_path):
    log = tmp_path / "requests.jsonl"
    with running(policy, upstream.base_url, tmp_path, token=TOKEN, log=log) as url:
        for key in ("none", "wrong-" + TOKEN):
            with pytest.raises(openai.AuthenticationError) as e:
                sdk(url, key).completions.create(model="test-model", prompt=ARTICLE)
            assert e.value.status_code == 401 and TOKEN not in json.dumps(e.value.body)
        with pytest.raises(openai.AuthenticationError):
            sdk(url, "none").models.list()
        ok = sdk(url, TOKEN).completions.with_raw_response.create(model="test-model", prompt=ARTICLE)
        base = url.removesuffix("/v1")
        assert json.loads(urllib.request.urlopen(base + "/health").read()) == {"status": "ok"}
        request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        metrics = urllib.request.urlopen(request).read().decode()
    assert upstream.state.auth_headers[-1] == f"Bearer {UPSTREAM_KEY}"  # the upstream key went up, nowhere else
    shown = ok.text + json.dumps(dict(ok.headers)) + metrics + log.read_text()
    assert TOKEN not in shown and UPSTREAM_KEY not in shown and UPSTREAM_KEY[-4:] not in shown
    assert 'status="401"} 2' in metrics


@contextlib.contextmanager
def upstream_process(port=0):
    """The test server in its own process: killing it drops its connections too, as a real outage does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsp.llm.testserver", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def test_upstream_down_then_back(policy, tmp_path):
    with upstream_process() as upstream_url:
        port = int(upstream_url.rsplit(":", 1)[1].split("/")[0])
        cm = running(policy, upstream_url, tmp_path)
        url = cm.__enter__()
    try:
        client = sdk(url)
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as e:  # the upstream is gone
                client.completions.create(model="test-model", prompt=ARTICLE, stream=stream)
            assert e.value.status_code == 502
            message = e.value.body["message"]
            assert message.startswith("upstream LLM failed:") and "\n" not in message and upstream_url not in message
        with upstream_process(port):
            answer = client.completions.create(model="test-model", prompt=ARTICLE)
            assert answer.choices[0].text and not answer.dsp["cached"]
    finally:
        cm.__exit__(None, None, None)


def test_cap_reached_is_429_not_a_hang(policy, upstream, tmp_path):
    with running(policy, upstream.base_url, tmp_path, max_llm_calls=2) as url:
        client = sdk(url)
        first = client.completions.create(model="test-model", prompt=ARTICLE)
        client.completions.create(model="test-model", prompt=ARTICLE + " Two.")
        for stream in (False, True):
            with pytest.raises(openai.RateLimitError) as e:
                client.completions.create(model="test-model", prompt=ARTICLE + " Three.", stream=stream)
            assert e.value.body["code"] == "dsp_budget_exceeded" and "--max-llm-calls=2" in e.value.body["message"]
        again = client.completions.create(model="test-model", prompt=ARTICLE)  # a cached answer costs nothing
        assert again.choices[0].text == first.choices[0].text and again.dsp["cached"]
    assert len(upstream.state.requests) == 2


def test_log_is_data_that_eval_and_sft_read(policy, upstream, tmp_path):
    log = tmp_path / "served.jsonl"
    with running(policy, upstream.base_url, tmp_path, log=log) as url:
        client = sdk(url)
        answers = [client.completions.create(model="test-model", prompt=ARTICLE + f" Part {i} .") for i in range(3)]
        list(client.completions.create(model="test-model", prompt=ARTICLE + " Streamed .", stream=True))
    examples = load_examples(str(log), input_field="article", target_field="highlights")
    assert [e.input for e in examples] == [ARTICLE + f" Part {i} ." for i in range(3)] + [ARTICLE + " Streamed ."]
    assert [e.target for e in examples[:3]] == [a.choices[0].text for a in answers]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows[0]["hint"] == answers[0].dsp["hint"] and rows[0]["latency_ms"] >= rows[0]["hint_ms"] > 0
    assert rows[0]["prompt_tokens"] > 0 and rows[0]["completion_tokens"] > 0


def test_cli_without_the_extra_says_how_to_install(policy_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "dsp.serve.app", None)  # as if FastAPI were not installed
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    r = CliRunner().invoke(
        app, ["serve", "--policy", str(policy_dir), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    )
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "pip install -e '.[serve]'" in r.stderr
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # set before torch could load: idle threads do not spin


def test_answers_do_not_wait_for_a_delayed_ack(policy, upstream, tmp_path):
    # Without TCP_NODELAY on the accepted sockets every answer took >= 40 ms (headers and body sent apart).
    import http.client
    import socket

    with running(policy, upstream.base_url, tmp_path) as url:
        conn = http.client.HTTPConnection(url.split("//")[1].split("/")[0])
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            conn.request("GET", "/health")
            conn.getresponse().read()
            times.append(time.perf_counter() - t0)
        conn.close()
    assert min(times) < 0.03, times


def test_a_taken_port_is_one_line(tmp_path):
    from dsp.errors import DSPError
    from dsp.serve.server import bind

    with TestServer() as taken:
        port = int(taken.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(DSPError, match=rf"cannot listen on 127.0.0.1:{port}: Address already in use"):
            bind(Listen("127.0.0.1", port))


def test_llm_params_reach_the_upstream(policy, upstream, tmp_path):
    with running(policy, upstream.base_url, tmp_path, extra_params={"min_p": 0.05, "repeat_last_n": 16}) as url:
        sdk(url).completions.create(model="test-model", prompt=ARTICLE, max_tokens=8)
    assert {k: upstream.state.requests[-1].get(k) for k in ("min_p", "repeat_last_n")} == {
        "min_p": 0.05,
        "repeat_last_n": 16,
    }


def test_an_empty_token_is_refused_not_taken_for_no_token(policy_dir):  # noqa: F811
    r = CliRunner().invoke(
        app,
        ["serve", "--policy", str(policy_dir), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
        env={"DSP_SERVE_TOKEN": ""},
    )
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "DSP_SERVE_TOKEN is set but empty" in r.stderr


def test_a_successful_models_call_is_counted_in_metrics(policy, upstream, tmp_path):
    with running(policy, upstream.base_url, tmp_path) as url:
        assert [m.id for m in sdk(url).models.list()] == ["test-model"]
        metrics = urllib.request.urlopen(url.removesuffix("/v1") + "/metrics").read().decode()
    assert 'dsp_requests_total{route="/v1/models",status="200"} 1' in metrics


def test_a_body_that_is_not_json_names_no_param(policy, upstream, tmp_path):
    with running(policy, upstream.base_url, tmp_path) as url:
        request = urllib.request.Request(
            url + "/completions", data=b"prompt=not json", method="POST", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request)
        error = json.loads(e.value.read())["error"]
    assert e.value.code == 400 and error["param"] is None and "not valid JSON" in error["message"], error
    assert error["type"] == "invalid_request_error" and "\n" not in error["message"]
