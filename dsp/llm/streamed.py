"""One answer read from a streamed request (`stream: true`), as its chunks arrive.

Some OpenAI-compatible servers ignore `stream: true` and answer with plain JSON; the SDK would read that
body as an event stream with no events, an empty answer. `plain_answer` finds such a body, and
`StreamedAnswer.take_whole` takes its answer as the one piece.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from dsp.llm.retry import MalformedResponse
from dsp.llm.types import LLMResult


async def plain_answer(sdk_stream: Any) -> dict[str, Any] | None:
    """The JSON body of an answer to `stream: true` that is not an event stream, else None."""
    response = getattr(sdk_stream, "response", None)
    if response is None or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(await response.aread())
    except ValueError as e:
        raise MalformedResponse(f"the answer is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(body, dict):
        raise MalformedResponse("the answer is not a JSON object")
    return body


async def no_chunks() -> AsyncIterator[Any]:
    """The chunks left after a plain answer: none."""
    return
    yield  # an async generator that gives nothing


class StreamedAnswer:
    """The pieces of one answer so far, its finish reason and the usage the server reported (None until then)."""

    def __init__(self, endpoint: str):
        self.chat = endpoint == "chat"
        self.text = ""
        self.pieces = 0  # pieces with text: about a token each on llama.cpp and OpenAI
        self.finish: str | None = None
        self.usage: tuple[int, int] | None = None  # (prompt tokens, completion tokens)
        self.choices = 0  # chunks that carried a choice: a stream with none has no answer (malformed, retried)

    def take(self, chunk: Any) -> str:
        """One SDK chunk: its piece of text ("" for a chunk with none)."""
        if getattr(chunk, "usage", None) is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            return ""
        self.choices += 1
        c = chunk.choices[0]
        self.finish = c.finish_reason or self.finish
        return self._add((c.delta.content or "") if self.chat else (c.text or ""))

    def take_whole(self, body: dict[str, Any]) -> str:
        """A plain JSON answer (`plain_answer`) as the one piece."""
        choices = body.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise MalformedResponse("no choices in the answer")
        c = choices[0]
        self.choices += 1
        self.finish = c.get("finish_reason")
        usage = body.get("usage")
        if isinstance(usage, dict):
            self.usage = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        return self._add(((c.get("message") or {}).get("content") if self.chat else c.get("text")) or "")

    def _add(self, piece: str) -> str:
        self.text += piece
        self.pieces += bool(piece)
        return piece

    def cut(self, at: int | None) -> bool:
        """End the answer before position `at` (a repeated sentence, `dsp.llm.repeats`); False if `at` is None."""
        if at is None:
            return False
        self.text, self.finish = self.text[:at].rstrip(), "repeat"
        return True

    def tokens(self, wire: dict[str, Any], *, cut_early: bool = False) -> tuple[int, int]:
        """(prompt, completion) tokens: the server's usage, else an estimate, so the cost cap never sees a free call.

        A stream read to its end without usage: about 4 characters a token. One closed early (`cut_early`)
        reports none: a UTF-8 byte of the prompt a token (the cost cap's bound) and a token a piece received."""
        sent = wire.get("prompt") or "".join(m["content"] for m in wire["messages"])
        if cut_early:
            if self.usage is not None and self.finish != "repeat":
                return self.usage
            return len(sent.encode("utf-8")), self.pieces
        return self.usage if self.usage is not None else (len(sent) // 4, len(self.text) // 4)

    def result(self, tokens: tuple[int, int]) -> LLMResult:
        return LLMResult(
            text=self.text, prompt_tokens=tokens[0], completion_tokens=tokens[1], finish_reason=self.finish
        )
