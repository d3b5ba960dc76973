"""The client against a real HTTP server on loopback."""

import asyncio
import time

import pytest

from dsp.errors import BudgetExceeded, LLMError
from dsp.llm import AsyncLLMClient, LLMCache, LLMConfig, LLMRequest
from dsp.llm.retry import failure_kind, retry_after_seconds, retry_delay, should_retry
from dsp.llm.testserver import TestServer

SECRET = "sk-test-SECRETKEY0123456789abcdef"


@pytest.fixture
def server():
    with TestServer() as s:
        yield s


def make_client(server, tmp_path, **kw):
    kw.setdefault("concurrency", 8)
    cfg = LLMConfig(model="test-model", base_url=server.base_url, api_key=SECRET, **kw)
    return AsyncLLMClient(cfg, LLMCache(tmp_path / "cache.sqlite"))


def run(coro):
    return asyncio.run(coro)


def test_cache_hit_across_clients(server, tmp_path):
    req = LLMRequest(prompt="Article: a b c\nSummary:", max_tokens=5)

    async def go():
        c = make_client(server, tmp_path)
        first = await c.complete(req)
        second = await c.complete(req)
        await c.aclose()
        return c, first, second

    c, first, second = run(go())
    assert first.text == "a b c" and not first.cached
    assert second.cached and second.text == first.text
    assert c.usage.requests == 1 and c.usage.cache_hits == 1
    # A new process (new client, same file) is served from disk too.
    c2, third, _ = run(go())
    assert third.cached and c2.usage.requests == 0
    assert len(server.state.requests) == 1


def test_samples_are_distinct_entries(server, tmp_path):
    reqs = [LLMRequest(prompt="x\ny", temperature=0.8, sample_index=i) for i in range(4)]

    async def go():
        c = make_client(server, tmp_path)
        out = await c.complete_many(reqs)
        again = await c.complete_many(reqs)
        return out, again

    out, again = run(go())
    assert len({r.text for r in out}) == 4
    assert [r.text for r in again] == [r.text for r in out] and all(r.cached for r in again)
    assert len(server.state.requests) == 4


def test_identical_requests_in_flight_make_one_call(server, tmp_path):
    server.state.latency = 0.2
    req = LLMRequest(prompt="same\nprompt")

    async def go():
        c = make_client(server, tmp_path)
        return c, await c.complete_many([req] * 10)

    c, out = run(go())
    assert len(server.state.requests) == 1
    assert c.usage.dedup_hits == 9 and len({r.text for r in out}) == 1


def test_concurrency_limit_and_round_trips(server, tmp_path):
    server.state.latency = 0.2
    reqs = [LLMRequest(prompt=f"p {i}\nq") for i in range(20)]

    async def go():
        c = make_client(server, tmp_path, concurrency=4)
        t = time.perf_counter()
        await c.complete_many(reqs)
        return time.perf_counter() - t

    wall = run(go())
    assert server.state.max_inflight == 4
    assert wall >= 20 / 4 * 0.2 * 0.9  # about N / concurrency round trips, not fewer


def test_retry_honours_retry_after(server, tmp_path):
    server.state.faults = [(429, {"Retry-After": "1"}, '{"error": {"message": "slow down"}}')]

    async def go():
        c = make_client(server, tmp_path)
        t = time.perf_counter()
        r = await c.complete(LLMRequest(prompt="a\nb"))
        return c, r, time.perf_counter() - t

    c, r, wall = run(go())
    assert r.text == "a" and c.usage.retries == 1 and len(server.state.requests) == 2
    assert c.usage.retry_reasons == {"HTTP 429": 1}
    assert wall >= 0.95


def test_retries_5xx_then_fails_clearly(server, tmp_path):
    server.state.faults = [(503, {"Retry-After": "0"}, "{}")] * 3

    async def go():
        c = make_client(server, tmp_path, max_retries=2)
        await c.complete(LLMRequest(prompt="a\nb"))

    with pytest.raises(LLMError, match="failed after 3 tries: HTTP 503"):
        run(go())
    assert len(server.state.requests) == 3


def test_no_retry_on_400(server, tmp_path):
    server.state.faults = [(400, {}, '{"error": {"message": "bad request"}}')]

    async def go():
        c = make_client(server, tmp_path)
        try:
            await c.complete(LLMRequest(prompt="a\nb"))
        finally:
            assert c.usage.retries == 0

    with pytest.raises(LLMError, match="after 1 tries: HTTP 400"):
        run(go())
    assert len(server.state.requests) == 1


def test_call_cap_stops_before_passing(server, tmp_path):
    reqs = [LLMRequest(prompt=f"p {i}\nq") for i in range(5)]

    async def go():
        c = make_client(server, tmp_path, max_llm_calls=3, concurrency=1)
        return c, await c.complete_many(reqs)

    c, out = run(go())
    assert len(server.state.requests) == 3
    assert sum(isinstance(r, BudgetExceeded) for r in out) == 2
    assert c.usage.requests == 3


def test_cost_cap(server, tmp_path):
    reqs = [LLMRequest(prompt="w " * 300 + "\nq", max_tokens=100) for _ in range(1)] + [
        LLMRequest(prompt=f"{i} " * 300 + "\nq", max_tokens=100) for i in range(1, 10)
    ]

    async def go():
        # worst case per call: 600 chars / 3 * $10 + 100 * $10 per 1M tokens = $0.003
        c = make_client(server, tmp_path, max_cost=0.01, price_in=10.0, price_out=10.0, concurrency=1)
        return c, await c.complete_many(reqs)

    c, out = run(go())
    assert 0 < c.usage.requests < 10
    assert c.usage.cost <= 0.01
    assert any(isinstance(r, BudgetExceeded) for r in out)


@pytest.mark.parametrize("concurrency", [1, 16])
def test_cost_cap_holds_when_text_has_more_tokens_than_chars_over_3(server, tmp_path, concurrency):
    """The test server counts a token per word: "a a a ..." has a token per 2 characters, more than the
    old chars/3 reservation assumed; with 16 in flight that let spend pass the cap by several calls."""
    server.state.latency = 0.05  # so that calls overlap
    reqs = [LLMRequest(prompt=f"{i} " + "a " * 3000 + "\nq", max_tokens=1) for i in range(30)]
    cap = 0.3  # about 10 calls' real cost

    async def go():
        c = make_client(server, tmp_path, max_cost=cap, price_in=10.0, price_out=10.0, concurrency=concurrency)
        return c, await c.complete_many(reqs)

    c, out = run(go())
    answered = [r for r in out if not isinstance(r, BaseException)]
    costs = [(r.prompt_tokens * 10.0 + r.completion_tokens * 10.0) / 1e6 for r in answered]
    assert answered and all(isinstance(r, BudgetExceeded) for r in out if isinstance(r, BaseException))
    assert abs(sum(costs) - c.usage.cost) < 1e-12  # the server's own usage is what is counted
    assert c.usage.cost <= cap + max(costs)  # never past the cap by more than one call's real cost...
    assert c.usage.cost <= cap  # ...and here not at all: the reservation bounds each call's real cost
    assert c.usage.cost > 0.2  # nor stopped early: a call reserves ~0.06, so at most that much is left unspent
    assert c.usage.requests == len(server.state.requests) == len(answered)


def test_key_never_on_disk_nor_in_errors(server, tmp_path):
    server.state.faults = [(401, {}, '{"error": {"message": "Incorrect API key provided: %s"}}' % SECRET)]

    async def go():
        c = make_client(server, tmp_path)
        with pytest.raises(LLMError) as e:
            await c.complete(LLMRequest(prompt="x\ny"))
        await c.complete_many([LLMRequest(prompt=f"{i}\ny") for i in range(5)])
        c.cache.close()
        return str(e.value)

    message = run(go())
    assert "401" in message and SECRET not in message and SECRET[-4:] not in message
    assert server.state.auth_headers[0] == f"Bearer {SECRET}"  # the key was used...
    for f in tmp_path.iterdir():  # ...and never stored
        assert SECRET.encode() not in f.read_bytes(), f


def test_chat_endpoint(server, tmp_path):
    async def go():
        c = make_client(server, tmp_path, endpoint="chat")
        return await c.complete(LLMRequest(messages=(("system", "be brief"), ("user", "Q: a b\nA:"))))

    assert run(go()).text == "a b"
    assert server.state.requests[0]["messages"][0] == {"role": "system", "content": "be brief"}


def test_retry_policy_is_pure():
    import openai

    try:  # openai 3.x ships its own fork of httpx
        import httpx2 as httpx
    except ImportError:
        import httpx

    req = httpx.Request("POST", "http://x/v1/completions")

    def err(status, headers=None):
        return openai.APIStatusError("e", response=httpx.Response(status, headers=headers, request=req), body=None)

    assert should_retry(err(429)) and should_retry(err(502)) and should_retry(openai.APITimeoutError(req))
    assert not should_retry(err(400)) and not should_retry(err(401)) and not should_retry(ValueError())
    assert retry_delay(err(429, {"retry-after": "7"}), 1) == 7.0
    assert retry_delay(err(429, {"retry-after-ms": "250"}), 1) == 0.25
    d1, d4 = retry_delay(err(500), 1), retry_delay(err(500), 4)
    assert 0.375 <= d1 <= 0.5 and 3.0 <= d4 <= 4.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_failure_kind_names_the_error_and_the_transport_error_under_it_and_no_message():
    import openai

    try:
        import httpx2 as httpx
    except ImportError:
        import httpx

    req = httpx.Request("POST", "http://x/v1/completions")
    secret = "sk-secret-key-in-a-message"
    status = openai.APIStatusError(secret, response=httpx.Response(503, request=req), body=None)
    try:  # raised the way the SDK raises it: the transport's error is its cause
        try:
            raise httpx.RemoteProtocolError(secret)
        except httpx.RemoteProtocolError as e:
            raise openai.APIConnectionError(message=secret, request=req) from e
    except openai.APIConnectionError as e:
        dropped = e
    kinds = [failure_kind(status), failure_kind(dropped), failure_kind(ValueError(secret))]
    assert kinds == ["HTTP 503", "APIConnectionError (RemoteProtocolError)", "ValueError"]


def test_two_servers_under_one_model_name_never_share_answers_unless_told(tmp_path):
    from dsp.llm.types import server_namespace

    req = LLMRequest(prompt="Article: a b c\nSummary:", max_tokens=5)

    def ask(server, **kw) -> None:
        async def go():
            c = AsyncLLMClient(
                LLMConfig(model="same-name", base_url=server.base_url, **kw), LLMCache(tmp_path / "c.sqlite")
            )
            await c.complete(req)
            await c.aclose()
            c.cache.close()

        run(go())

    with TestServer() as one, TestServer() as two:
        ask(one)
        ask(two)  # other weights may sit behind the same model name: asked, not answered from one's cache
        assert len(one.state.requests) == len(two.state.requests) == 1
        ask(one, cache_namespace="shared")
        ask(two, cache_namespace="shared")  # shared on purpose: the second URL is never asked
        assert len(one.state.requests) == 2 and len(two.state.requests) == 1

    assert server_namespace("HTTP://me:s3cret@LocalHost/v1/?api-key=s3cret#x") == "http://localhost:80/v1"
    assert server_namespace("https://api.openai.com/v1/") == server_namespace("https://API.openai.com:443/v1")
    assert server_namespace("http://h:8000/v1") != server_namespace("http://h:8001/v1")
    assert LLMConfig(model="m").cache_namespace == server_namespace("https://api.openai.com/v1")


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_a_server_that_refuses_max_tokens_gets_max_completion_tokens(server, tmp_path, endpoint):
    server.state.reject_max_tokens = True
    reqs = [
        LLMRequest(prompt=f"Article: x\nHint: k{i} w\nA:", messages=(("user", f"Hint: k{i} w\nA:"),), max_tokens=2)
        for i in range(4)
    ]

    async def go(**kw):
        c = make_client(server, tmp_path, endpoint=endpoint, concurrency=1, **kw)
        return c, await c.complete_many(reqs)

    c, out = run(go())
    assert [r.text for r in out] == [f"k{i} w" for i in range(4)]
    first, *rest = server.state.requests
    assert "max_tokens" in first and all(q.get("max_completion_tokens") == 2 and "max_tokens" not in q for q in rest)
    assert len(rest) == 4 and c.usage.requests == 5 and c.usage.failures == 0  # one refusal, then each call once
    server.state.requests.clear()
    c, out = run(go(token_limit_field="max_completion_tokens", cache_namespace="other"))  # told: never refused
    assert all(not isinstance(r, BaseException) for r in out) and len(server.state.requests) == 4
    assert all("max_tokens" not in q for q in server.state.requests)


def test_other_400s_are_not_taken_for_a_max_tokens_refusal(server, tmp_path):
    server.state.faults = [(400, {}, '{"error": {"message": "prompt too long", "param": "prompt"}}')]

    async def go():
        c = make_client(server, tmp_path, endpoint="chat")
        return await c.complete(LLMRequest(prompt="x\ny"))

    with pytest.raises(LLMError, match="HTTP 400"):
        run(go())
    assert len(server.state.requests) == 1


def test_a_backend_that_is_not_openai_is_one_subclass(tmp_path):
    """A backend overrides `_create` only; cache, budget and retries still wrap it."""
    from types import SimpleNamespace

    from dsp.data import Example
    from dsp.llm.retry import MalformedResponse
    from dsp.roundtrip import round_trip
    from dsp.tasks import SummarizationTask

    class Upper(AsyncLLMClient):  # "answers" with the hint, upper-cased; fails once, then works
        calls = 0

        async def _create(self, wire, params):
            Upper.calls += 1
            if Upper.calls == 1:
                raise MalformedResponse("a garbled first answer")  # transient: retried
            hint = wire["prompt"].rsplit("Hint:", 1)[-1].split("\n")[0]
            choice = SimpleNamespace(text=hint.upper(), finish_reason="stop")
            return SimpleNamespace(choices=[choice], usage=SimpleNamespace(prompt_tokens=10, completion_tokens=3))

    task = SummarizationTask()
    examples = [
        Example(id=str(i), input=f"Alice Moreau opened museum number {i}.", target="Alice Moreau opened a museum.")
        for i in range(3)
    ]

    async def main():
        client = Upper(
            LLMConfig(model="upper", base_url="http://upper.invalid/v1", max_llm_calls=4),
            LLMCache(tmp_path / "c.sqlite"),
        )
        first = await round_trip(client, task, examples, ["Alice Moreau"] * 3)
        again = await round_trip(client, task, examples, ["Alice Moreau"] * 3)  # the cache answers
        usage = client.usage
        with pytest.raises(BudgetExceeded):  # 4 requests so far (a retry is one): a fifth would pass the cap
            await round_trip(client, task, examples[:1], ["museum"])
        return first, again, usage

    first, again, usage = asyncio.run(main())
    assert first == again and all(s > 0 for s in first)
    assert usage.retries == 1 and usage.cache_hits == 3 and Upper.calls == 4  # 3 answers + the timed-out try
