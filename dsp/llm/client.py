"""The async LLM client: cache -> in-flight dedup -> budget -> concurrency limit -> openai SDK -> retries.

Each layer is one short method: `complete` (the cache), `_deduplicated` (one call for identical requests in
flight), `_call` (the concurrency limit and the retries around one send), `_send` (the budget's claim around
one HTTP request, `dsp.llm.budget`). One network call per sample: servers such as llama.cpp ignore `n`, and one
call per sample index gives each sample its own cache entry, so a re-run with more samples pays only for the
new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tqdm.auto import tqdm

from dsp.errors import BudgetExceeded, DSPError, LLMBackendGone, LLMError
from dsp.llm.budget import Budget
from dsp.llm.cache import LLMCache, cache_key
from dsp.llm.repeats import first_repeat
from dsp.llm.retry import MalformedResponse, failure_kind, retry_delay, should_retry
from dsp.llm.sampling import refused_field_note
from dsp.llm.streamed import StreamedAnswer, no_chunks, plain_answer
from dsp.llm.types import OPENAI_URL, LLMConfig, LLMRequest, LLMResult, Usage

log = logging.getLogger(__name__)


def refuses_max_tokens(e: openai.BadRequestError) -> bool:
    """A 400 saying the model takes max_completion_tokens, not max_tokens (OpenAI's reasoning models:
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
    instead.")."""
    body = e.body if isinstance(e.body, dict) else {}
    detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    text = f"{e} {detail.get('message', '')}"
    return detail.get("param") == "max_tokens" or ("max_tokens" in text and "max_completion_tokens" in text)


def redact(text: str, secret: str | None) -> str:
    """Remove a secret (and its common masked spellings' tail) from text that may be shown."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
        text = text.replace(secret[-4:], "***")
    return text


class AsyncLLMClient:
    """Calls an OpenAI-compatible server. Pass one in; nothing here is global.

    A backend that does not speak the OpenAI API is one subclass overriding `_create(wire, params)`: one
    request, returning an object shaped like the SDK's answer (`choices[0].text`, or `.message.content` for
    chat, `finish_reason`, and `usage.prompt_tokens/completion_tokens`), raising on failure. The cache,
    de-duplication, budget caps and retries around it stay as they are (tests/llm/test_client.py has one).
    """

    def __init__(
        self, config: LLMConfig, cache: LLMCache | None = None, backend_gone: Callable[[], str | None] | None = None
    ):
        self.config = config
        self.cache = cache
        # For a server we started: None while it runs, one line once its process has ended.
        self._backend_gone = backend_gone or (lambda: None)
        self.usage = Usage()
        self.budget = Budget(config, self.usage)
        self._sem = asyncio.Semaphore(config.concurrency)
        self._inflight: dict[str, asyncio.Future] = {}
        self._limit_field = config.token_limit_field  # switched once if the server refuses max_tokens
        self._api = openai.AsyncOpenAI(
            # A local server takes any key; the SDK insists on one being set.
            api_key=config.api_key or "no-key",
            base_url=config.base_url or OPENAI_URL,
            max_retries=0,  # tenacity retries, so that we can count and cap them
            timeout=config.timeout,
        )

    # -- public ---------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """The LLM as error messages name it."""
        return self.config.base_url or OPENAI_URL

    async def complete(self, request: LLMRequest) -> LLMResult:
        """One answer: from the cache, from an identical call in flight, or from the server (then cached)."""
        wire = self._wire(request)
        key = cache_key(wire)
        if (hit := self._cached(key)) is not None:
            return hit
        result = await self._deduplicated(key, wire)
        self._store(key, wire, result)
        return result

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """The answer in pieces as the server writes them (`stream: true`), for `dsp serve`.

        Cache and budget as `complete`: a cached answer comes as one piece, a finished stream is
        cached. Retried only until the first piece arrives; a stream that breaks after that raises
        LLMError (its pieces were already passed on). No in-flight dedup: each stream is its own call.
        """
        wire = self._wire(request)
        key = cache_key(wire)
        if (hit := self._cached(key)) is not None:
            yield hit.text
            return
        async with self._sem:
            opened = await self._with_retries(wire, lambda: self._open_stream(wire))
            answer = opened.answer
            async with opened.held:  # the claim and the connection, until the stream is read or dropped
                if answer.text:
                    yield answer.text
                try:
                    async for chunk in opened.chunks:
                        if piece := answer.take(chunk):
                            yield piece
                except Exception as e:
                    self.usage.failures += 1
                    raise LLMError(
                        f"the LLM's stream broke after {len(answer.text)} characters: {type(e).__name__}"
                    ) from None
                tokens = answer.tokens(wire)
                self.budget.record(*tokens)  # before the claim goes, so a waiting request sees the real cost
        self._store(key, wire, answer.result(tokens))

    async def complete_many(
        self, requests: Iterable[LLMRequest], desc: str | None = None
    ) -> list[LLMResult | BaseException]:
        """All requests at once (bounded by the concurrency limit); failures come back as exceptions."""
        requests = list(requests)
        # leave=None: a top-level bar stays with a new line (a cleared one leaves the cursor after "\r", where
        # the results that follow on stdout would run into it in a log); one nested under another is cleared
        bar = tqdm(total=len(requests), desc=desc, unit="call", disable=desc is None, leave=None)

        async def one(r: LLMRequest):
            try:
                return await self.complete(r)
            finally:
                bar.update(1)
                bar.set_postfix(sent=self.usage.requests, cached=self.usage.cache_hits, refresh=False)

        try:
            results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
        finally:
            bar.close()
            sys.stderr.flush()  # the bar's last line is out before anything the command prints next
        for r in results:
            if isinstance(r, LLMBackendGone):
                raise r  # no answer can come any more: the command stops here, its answers so far cached
        return results

    async def check_reachable(self) -> None:
        """Fail fast, with what to change, when the endpoint is down or refuses the key."""
        url = self.where
        try:
            await self._api.models.list()
        except openai.APIConnectionError:
            raise DSPError(f"cannot reach the LLM at {url}: start the server or fix --base-url") from None
        except openai.AuthenticationError:
            raise DSPError(
                f"the LLM at {url} refused the API key (HTTP 401): check OPENAI_API_KEY or --api-key"
            ) from None
        except openai.APIError:
            pass  # some servers have no /models; the first real call will tell

    async def collect(self, requests: Iterable[LLMRequest], desc: str | None = None) -> list[LLMResult | DSPError]:
        """Every request's answer, in order; an LLM failure or the budget stop in its place, anything else raised."""
        answers = await self.complete_many(requests, desc=desc)
        for a in answers:
            if isinstance(a, BaseException) and not isinstance(a, (LLMError, BudgetExceeded)):
                raise a
        return answers  # type: ignore[return-value]

    async def aclose(self) -> None:
        await self._api.close()

    # -- the layers ---------------------------------------------------------------------------
    def _cached(self, key: str) -> LLMResult | None:
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is None:
            return None
        self.usage.cache_hits += 1
        return LLMResult(**{**hit, "cached": True})

    def _store(self, key: str, wire: dict[str, Any], result: LLMResult) -> None:
        if self.cache is not None:
            self.cache.put(key, wire, asdict(result))

    async def _deduplicated(self, key: str, wire: dict[str, Any]) -> LLMResult:
        """One call for identical requests in flight: the later ones wait for the first one's answer."""
        if key in self._inflight:
            self.usage.dedup_hits += 1
            return await asyncio.shield(self._inflight[key])
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._call(wire)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: waiters may be none
            raise
        finally:
            del self._inflight[key]
        future.set_result(result)
        return result

    async def _call(self, wire: dict[str, Any]) -> LLMResult:
        """The concurrency limit and the retries around one send."""
        send = self._send_until_repeat if wire.get("stop_repeats") else self._send
        async with self._sem:
            return await self._with_retries(wire, lambda: send(wire))

    async def _send(self, wire: dict[str, Any]) -> LLMResult:
        """One answer under the budget: a claim per HTTP request. A server that refuses `max_tokens` is asked
        again, once, with the field it takes (a new request, claimed and counted like any other)."""
        while True:
            limit_field = self._limit_field
            async with self.budget.claim(wire):
                try:
                    r = await self._create(wire, self._params(wire, limit_field))
                except ValueError as e:  # a 200 whose body is not the JSON it claims (cut off, garbled)
                    raise MalformedResponse(f"the answer is not valid JSON ({str(e)[:80]})") from None
                except openai.BadRequestError as e:
                    if limit_field != "max_tokens" or not refuses_max_tokens(e):
                        raise
                else:
                    result = self._parse(wire, r)
                    self.budget.record(result.prompt_tokens, result.completion_tokens)
                    return result
            self._take_max_completion_tokens()

    def _parse(self, wire: dict[str, Any], r: Any) -> LLMResult:
        """The SDK's answer as an LLMResult; an answer with no choice is malformed (and retried)."""
        if not r.choices or (wire["endpoint"] == "chat" and r.choices[0].message is None):
            raise MalformedResponse("no choices in the answer")
        choice = r.choices[0]
        text = (choice.message.content if wire["endpoint"] == "chat" else choice.text) or ""
        pt = r.usage.prompt_tokens if r.usage else 0
        ct = r.usage.completion_tokens if r.usage else 0
        return LLMResult(text=text, prompt_tokens=pt, completion_tokens=ct, finish_reason=choice.finish_reason)

    def _take_max_completion_tokens(self) -> None:
        if self._limit_field == "max_tokens":
            self._limit_field = "max_completion_tokens"
            log.warning(
                "the LLM refuses max_tokens: sending max_completion_tokens from now on "
                "(--token-limit-field max_completion_tokens says so from the start)"
            )

    async def _send_until_repeat(self, wire: dict[str, Any]) -> LLMResult:
        """One streamed request, closed as soon as the answer repeats a sentence (finish reason "repeat")."""
        answer = StreamedAnswer(wire["endpoint"])
        async with self.budget.claim(wire):
            try:
                async with self._chunks(wire, answer) as chunks:
                    async for chunk in chunks:
                        if answer.take(chunk) and answer.cut(first_repeat(answer.text)):
                            break
            except ValueError as e:  # a chunk that is not the JSON it claims
                raise MalformedResponse(f"the stream is not valid JSON ({str(e)[:80]})") from None
            if not answer.choices:
                raise MalformedResponse("no choices in the streamed answer")
            if answer.finish != "repeat":
                answer.cut(first_repeat(answer.text, final=True))
            tokens = answer.tokens(wire, cut_early=True)
            self.budget.record(*tokens)
        return answer.result(tokens)

    async def _open_stream(self, wire: dict[str, Any]) -> OpenStream:
        """One try at a stream's first piece; the claim and the connection stay held in `OpenStream.held`."""
        answer = StreamedAnswer(wire["endpoint"])
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.budget.claim(wire))
            chunks = await stack.enter_async_context(self._chunks(wire, answer))
            while not answer.text:
                chunk = await anext(chunks, None)
                if chunk is None:
                    break
                answer.take(chunk)
            return OpenStream(stack.pop_all(), chunks, answer)

    @contextlib.asynccontextmanager
    async def _chunks(self, wire: dict[str, Any], answer: StreamedAnswer) -> AsyncIterator[AsyncIterator[Any]]:
        """The chunks of one streamed request, its connection closed however we leave. An upstream that answers
        `stream: true` with plain JSON gives `answer` its whole text at once, and no chunks."""
        sdk_stream = await self._create(wire, {**self._params(wire), "stream": True})
        try:
            body = await plain_answer(sdk_stream)
            if body is not None:
                answer.take_whole(body)
            yield no_chunks() if body is not None else aiter(sdk_stream)
        finally:
            await sdk_stream.close()

    def _wire(self, r: LLMRequest) -> dict[str, Any]:
        """The request as it is keyed: everything that changes the answer, nothing secret."""
        wire: dict[str, Any] = {
            "endpoint": self.config.endpoint,
            "model": self.config.model,
            "max_tokens": r.max_tokens,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "stop": list(r.stop) or None,
            "seed": r.seed,
            "sample_index": r.sample_index,
            "namespace": self.config.cache_namespace,
            # Absent (None, dropped from the key) when there are none, so the keys of plain requests stay as they were.
            "extra": {**dict(r.extra), **self.config.extra_params} or None,
            "stop_repeats": r.stop_repeats or None,
        }
        if self.config.endpoint == "chat":
            if r.messages is None:
                if r.prompt is None:
                    raise ValueError("a chat request needs messages or a prompt")
                wire["messages"] = [{"role": "user", "content": r.prompt}]
            else:
                wire["messages"] = [{"role": role, "content": content} for role, content in r.messages]
        else:
            if r.prompt is None:
                raise ValueError("a completions request needs a prompt")
            wire["prompt"] = r.prompt
        return wire

    async def _with_retries(self, wire: dict[str, Any], send: Callable[[], Awaitable[Any]]) -> Any:
        """`send()` with tenacity's retries; a failure for good becomes one LLMError line (key redacted)."""
        attempts = 0

        def wait(state) -> float:
            if self._backend_gone() is not None:
                return 0.0  # fail now, not after a backoff
            return retry_delay(state.outcome.exception(), state.attempt_number)

        def retry(e: BaseException) -> bool:
            return should_retry(e) and self._backend_gone() is None

        def count_retry(state) -> None:
            self.usage.retries += 1
            why = failure_kind(state.outcome.exception())
            self.usage.retry_reasons[why] = self.usage.retry_reasons.get(why, 0) + 1

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.config.max_retries + 1),
                wait=wait,
                retry=retry_if_exception(retry),
                before_sleep=count_retry,
                reraise=True,
            ):
                with attempt:
                    if (gone := self._backend_gone()) is not None:
                        raise LLMBackendGone(gone)
                    attempts += 1
                    return await send()
        except BudgetExceeded:
            raise
        except LLMBackendGone:
            self.usage.failures += 1
            raise
        except Exception as e:
            if (gone := self._backend_gone()) is not None:
                self.usage.failures += 1
                raise LLMBackendGone(gone) from None
            self.usage.failures += 1
            status = getattr(e, "status_code", None)
            what = failure_kind(e)
            detail = redact(str(e), self.config.api_key).splitlines()[0][:300] if str(e) else ""
            url = self.where
            raise LLMError(
                f"LLM call to {url} failed after {attempts} tries: {what}: {detail}"
                f"{refused_field_note(status, detail, wire.get('extra'))}"
            ) from None
        raise AssertionError("unreachable")

    async def _create(self, wire: dict[str, Any], params: dict[str, Any]):
        """One request to the server (no cache, budget or retries: those wrap it); the backend seam."""
        if wire["endpoint"] == "chat":
            return await self._api.chat.completions.create(messages=wire["messages"], **params)
        return await self._api.completions.create(prompt=wire["prompt"], **params)

    def _params(self, wire: dict[str, Any], limit_field: str | None = None) -> dict[str, Any]:
        """The SDK call's arguments; the output limit goes in the field this server takes (see LLMConfig)."""
        limit_field = limit_field or self._limit_field
        params: dict[str, Any] = {
            "model": wire["model"],
            "temperature": wire["temperature"],
            "top_p": wire["top_p"],
        }
        extra_body = dict(wire.get("extra") or {})
        if limit_field == "max_tokens" or wire["endpoint"] == "chat":
            params[limit_field] = wire["max_tokens"]
        else:  # the SDK's completions call has no such argument; the server reads it from the body
            extra_body[limit_field] = wire["max_tokens"]
        if extra_body:
            params["extra_body"] = extra_body
        if wire.get("stop"):
            params["stop"] = wire["stop"]
        if wire.get("seed") is not None:
            params["seed"] = wire["seed"]
        return params


@dataclass
class OpenStream:
    """A stream whose first piece has come: what to close once it is read, the chunks left, the answer so far."""

    held: contextlib.AsyncExitStack
    chunks: AsyncIterator[Any]
    answer: StreamedAnswer
