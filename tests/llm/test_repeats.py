"""The stop at the first repeated sentence: the rule, and the client that streams and closes there."""

import asyncio

import pytest

from dsp.llm import AsyncLLMClient, LLMCache, LLMConfig, LLMRequest
from dsp.llm.repeats import cut_repeats, first_repeat
from dsp.llm.testserver import TestServer


@pytest.mark.parametrize(
    "text, kept",
    [
        (
            " The league has grown . It is big and old . The league has grown . It is",
            " The league has grown . It is big and old .",
        ),
        ("One two three. Four five six! one  TWO three. Seven eight nine.", "One two three. Four five six!"),
        # a loop cut off by max_tokens: the last piece begins an earlier sentence again
        ("Rain fell all day. Roads were closed. Rain fell all", "Rain fell all day. Roads were closed."),
        # short pieces are abbreviations as often as sentences: never a repeat
        (
            "Mr. Smith went home today. Mr. Jones went out today.",
            "Mr. Smith went home today. Mr. Jones went out today.",
        ),
        ("No repeat here at all. Another thing said.", "No repeat here at all. Another thing said."),
        ("", ""),
    ],
)
def test_cut_repeats(text, kept):
    assert cut_repeats(text) == kept


def test_an_unfinished_answer_is_not_cut_on_a_prefix():
    # mid-stream, "Rain fell all" may still become another sentence
    assert first_repeat("Rain fell all day. Roads were closed. Rain fell all") is None
    assert first_repeat("Rain fell all day. Roads were closed. Rain fell all", final=True) == 38


def test_client_streams_and_stops_at_the_repeat(tmp_path):
    looping = "One two three. Four five six. One two three. Four five six. One two three."
    req = LLMRequest(prompt=f"Article: {looping}\nSummary:", max_tokens=64, stop_repeats=True)
    plain = LLMRequest(prompt=req.prompt, max_tokens=64)

    async def ask():
        c = AsyncLLMClient(LLMConfig(model="m", base_url=server.base_url), LLMCache(tmp_path / "c.sqlite"))
        try:
            return await c.complete(req), await c.complete(req), await c.complete(plain), c.usage
        finally:
            await c.aclose()

    with TestServer() as server:
        first, again, whole, usage = asyncio.run(ask())
        streamed, sent_plain = server.state.requests
    assert streamed.get("stream") is True and "stop_repeats" not in streamed  # our rule, not the server's
    assert first.text == "One two three. Four five six." and first.finish_reason == "repeat"
    # the pieces received, a word each: the repeated sentence is known when the space after it comes (" Four")
    assert first.completion_tokens == 10
    assert again.cached and again.text == first.text
    # without the rule: another cache entry, the answer whole, not streamed
    assert whole.text == looping and not sent_plain.get("stream") and usage.requests == 2


def test_a_server_that_answers_a_stream_with_plain_json_is_read_whole(tmp_path):
    looping = "One two three. Four five six. One two three."
    req = LLMRequest(prompt=f"Article: {looping}\nSummary:", max_tokens=64, stop_repeats=True)

    async def ask():
        c = AsyncLLMClient(LLMConfig(model="m", base_url=server.base_url), None)
        try:
            pieces = [p async for p in c.stream(LLMRequest(prompt="Article: a plain answer\nSummary:"))]
            return pieces, await c.complete(req), c.usage
        finally:
            await c.aclose()

    with TestServer() as server:
        server.state.ignore_stream = True
        pieces, cut, usage = asyncio.run(ask())
    assert pieces == ["a plain answer"]
    assert cut.text == "One two three. Four five six." and cut.finish_reason == "repeat"
    assert usage.requests == 2 and usage.answers == 2
