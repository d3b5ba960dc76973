"""The async LLM client: cache -> in-flight dedup -> budget -> concurrency limit -> openai SDK -> retries.

One network call per sample: servers such as llama.cpp ignore `n`, and one call per sample
index gives each sample its own cache entry, so a re-run with more samples pays only for the
new ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Literal
from urllib.parse import urlsplit, urlunsplit

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tqdm.auto import tqdm

from dsp.errors import BudgetExceeded, DSPError, LLMBackendGone, LLMError
from dsp.llm.cache import LLMCache, cache_key
from dsp.llm.retry import MalformedResponse, retry_delay, should_retry
from dsp.llm.repeats import first_repeat
from dsp.llm.sampling import check_sampling_fields, refused_field_note

OPENAI_URL = "https://api.openai.com/v1"
log = logging.getLogger(__name__)
# Tokens a server may add to a prompt beyond its text: BOS, and per chat message its role and delimiters.
PROMPT_SLACK_TOKENS = 8


def refuses_max_tokens(e: openai.BadRequestError) -> bool:
    """A 400 saying the model takes max_completion_tokens, not max_tokens (OpenAI's reasoning models:
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
    instead.")."""
    body = e.body if isinstance(e.body, dict) else {}
    detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    text = f"{e} {detail.get('message', '')}"
    return detail.get("param") == "max_tokens" or ("max_tokens" in text and "max_completion_tokens" in text)


def server_namespace(base_url: str) -> str:
    """The default cache namespace of a server: scheme, host, port and path of its base URL, lower-cased
    where case does not matter, the default port spelled out and a trailing slash dropped. Credentials
    (user:password@) and the query are left out: they do not change the answers, and a secret must never
    reach the cache."""
    u = urlsplit(base_url.strip())
    scheme = (u.scheme or "http").lower()
    try:
        port = u.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number: keep the URL's own spelling of the host part
        return f"{scheme}://{(u.hostname or '')}{u.path.rstrip('/')}"
    host = (u.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{scheme}://{host}{f':{port}' if port else ''}{u.path.rstrip('/')}"


def public_url(base_url: str) -> str:
    """The base URL as a run folder may keep it: without credentials (user:password@), query or fragment,
    where a key could hide."""
    u = urlsplit(base_url.strip())
    host = u.netloc.rpartition("@")[2]
    return urlunsplit((u.scheme, host, u.path, "", ""))


@dataclass
class LLMConfig:
    """Which LLM to call and how hard; flags override the OPENAI_* environment variables."""

    model: str | None = None
    """Model name sent to the server (env OPENAI_MODEL). It is part of every cache key."""
    base_url: str | None = None
    """OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (env OPENAI_BASE_URL)."""
    api_key: str | None = field(default=None, repr=False)
    """API key (env OPENAI_API_KEY). Never logged, cached or written to a run folder."""
    endpoint: Literal["completions", "chat"] = "completions"
    """`completions` for base models (prompt in, text out); `chat` for instruction-tuned chat models."""
    concurrency: int = 8
    """Most calls in flight at once; 8 suits a remote API's rate limits, raise it for your own server."""
    max_retries: int = 6
    """Retries per call on 429, 5xx, timeouts and dropped connections (not on 400/401)."""
    timeout: float = 120.0
    """Seconds before one HTTP call is abandoned (and retried)."""
    max_llm_calls: int | None = None
    """Hard cap on HTTP requests this run sends (retries count, cache hits do not)."""
    max_cost: float | None = None
    """Hard cap in USD; needs `price_in`/`price_out` for the model."""
    price_in: float | None = None
    """USD per 1M prompt tokens (from a prices file)."""
    price_out: float | None = None
    """USD per 1M completion tokens (from a prices file)."""
    token_limit_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """The request field that carries the output token limit. OpenAI's reasoning models refuse `max_tokens`
    and take `max_completion_tokens`; a 400 that says so switches to it once, for the rest of the run."""
    cache_namespace: str | None = None
    """Part of every cache key: answers from servers in different namespaces are never shared. Default: the
    server's normalised base URL (`server_namespace`), so two servers serving different weights under one
    model name never share answers; name one namespace for several URLs to share a cache on purpose."""
    extra_params: dict[str, Any] = field(default_factory=dict)
    """Further sampling fields sent in every request body (`--llm-param`), over a task's own; part of the cache key."""

    def __post_init__(self) -> None:
        # An empty variable counts as unset (a common way to "clear" one in CI and shells).
        self.model = self.model or os.environ.get("OPENAI_MODEL") or None
        self.base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = self.api_key or os.environ.get("OPENAI_API_KEY") or None
        self.cache_namespace = self.cache_namespace or server_namespace(self.base_url or OPENAI_URL)
        if self.endpoint not in ("completions", "chat"):
            raise DSPError(f"--endpoint must be 'completions' or 'chat', not '{self.endpoint}'")
        if self.token_limit_field not in ("max_tokens", "max_completion_tokens"):
            raise DSPError(f"--token-limit-field must be 'max_tokens' or 'max_completion_tokens', not '{self.token_limit_field}'")
        if self.concurrency < 1:
            raise DSPError(f"--concurrency must be at least 1, not {self.concurrency}")
        if not self.timeout > 0:
            raise DSPError(f"--llm-timeout must be positive, not {self.timeout}")
        if self.max_retries < 0:
            raise DSPError(f"--max-retries must be 0 or more, not {self.max_retries}")
        if self.max_llm_calls is not None and self.max_llm_calls < 0:
            raise DSPError(f"--max-llm-calls must be 0 or more, not {self.max_llm_calls}")
        self.extra_params = check_sampling_fields(self.extra_params, "--llm-param")
        if self.max_cost is not None and (self.price_in is None or self.price_out is None):
            raise DSPError(
                f"--max-cost needs the price of model '{self.model}': add it to a prices file and pass --prices"
            )

    def check_remote(self) -> None:
        """A remote endpoint needs a model name, and OpenAI's own needs a key."""
        if not self.model:
            raise DSPError("no LLM model named: pass --model or set OPENAI_MODEL")
        if (self.base_url is None or "api.openai.com" in self.base_url) and not self.api_key:
            raise DSPError("no API key for the OpenAI API: set OPENAI_API_KEY (or pass --base-url for your own server)")


@dataclass(frozen=True)
class LLMRequest:
    """One call: a prompt (completions) and/or messages (chat), sampling settings, and which sample.

    Given both, the endpoint takes its own: a task gives both, so the completions prompt (and its cache
    key) is the same whether or not the messages are there. Chat with a prompt only sends it as one user
    message."""

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    sample_index: int = 0
    extra: tuple[tuple[str, Any], ...] = ()
    """Further sampling fields for the body, as (name, JSON value) pairs: a task's [generation] extras."""
    stop_repeats: bool = False
    """End the answer before the first sentence it repeats: the call is streamed and closed there
    (`dsp.llm.repeats`), so a looping base model stops costing generation time."""


@dataclass
class LLMResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached: bool = False


@dataclass
class Usage:
    """Counts for one run. `requests` are HTTP requests sent; cache and dedup hits cost nothing."""

    requests: int = 0
    answers: int = 0
    cache_hits: int = 0
    dedup_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        looked_up = self.answers + self.cache_hits + self.dedup_hits
        d["cache_hit_rate"] = (self.cache_hits + self.dedup_hits) / looked_up if looked_up else 0.0
        return d


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

    def __init__(self, config: LLMConfig, cache: LLMCache | None = None,
                 backend_gone: Callable[[], str | None] | None = None):
        self.config = config
        self.cache = cache
        # For a server we started: None while it runs, one line once its process has ended.
        self._backend_gone = backend_gone or (lambda: None)
        self.usage = Usage()
        self._sem = asyncio.Semaphore(config.concurrency)
        self._inflight: dict[str, asyncio.Future] = {}
        self._reserved_cost = 0.0
        self._reservations = 0  # requests in flight holding a reservation
        self._budget_changed = asyncio.Condition()
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
        wire = self._wire(request)
        key = cache_key(wire)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                return LLMResult(**{**hit, "cached": True})
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
        if self.cache is not None:
            self.cache.put(key, wire, asdict(result))
        future.set_result(result)
        return result

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """The answer in pieces as the server writes them (`stream: true`), for `dsp serve`.

        Cache and budget as `complete`: a cached answer comes as one piece, a finished stream is
        cached. Retried only until the first piece arrives; a stream that breaks after that raises
        LLMError (its pieces were already passed on). No in-flight dedup: each stream is its own call.
        """
        wire = self._wire(request)
        key = cache_key(wire)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.usage.cache_hits += 1
            yield hit["text"]
            return
        pieces: list[str] = []
        usage: list[Any] = [None]
        finish: list[str | None] = [None]

        def take(chunk) -> str:
            if getattr(chunk, "usage", None) is not None:
                usage[0] = chunk.usage
            if not chunk.choices:
                return ""
            c = chunk.choices[0]
            finish[0] = c.finish_reason or finish[0]
            return (c.delta.content or "") if wire["endpoint"] == "chat" else (c.text or "")

        reserved: list[float | None] = [None]  # the worst case stays claimed until the stream's usage is recorded
        opened: list[Any] = []

        async def first_piece():
            reserved[0] = await self._reserve(wire)
            try:
                stream = await self._create(wire, {**self._params(wire), "stream": True})
                opened.append(stream)
                it = stream.__aiter__()
                async for chunk in it:
                    if text := take(chunk):
                        return it, text
                return it, ""
            except BaseException:
                estimate, reserved[0] = reserved[0], None
                await self._release(estimate)
                raise

        try:
            async with self._sem:
                it, text = await self._with_retries(wire, first_piece)
                if text:
                    pieces.append(text)
                    yield text
                try:
                    async for chunk in it:
                        if text := take(chunk):
                            pieces.append(text)
                            yield text
                except Exception as e:
                    self.usage.failures += 1
                    raise LLMError(f"the LLM's stream broke after {sum(map(len, pieces))} characters: "
                                   f"{type(e).__name__}") from None
            answer = "".join(pieces)
            u = usage[0]
            # Without a usage chunk, count ~4 characters a token: the cost cap must not see a free call.
            pt = u.prompt_tokens if u else len(wire.get("prompt") or "".join(m["content"] for m in wire["messages"])) // 4
            ct = u.completion_tokens if u else len(answer) // 4
            self._record(pt, ct)  # before the reservation goes, so a waiting request sees the real cost
        finally:
            if reserved[0] is not None:
                await self._release(reserved[0])
            for stream in opened:  # a consumer that stopped early must not leave the connection open
                await stream.close()
        if self.cache is not None:
            self.cache.put(key, wire, asdict(LLMResult(text=answer, prompt_tokens=pt, completion_tokens=ct,
                                                       finish_reason=finish[0])))

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
            raise DSPError(f"the LLM at {url} refused the API key (HTTP 401): check OPENAI_API_KEY or --api-key") from None
        except openai.APIError:
            pass  # some servers have no /models; the first real call will tell

    async def aclose(self) -> None:
        await self._api.close()

    # -- internals ------------------------------------------------------------------------
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

    def worst_case_cost(self, wire: dict[str, Any]) -> float:
        """An upper bound on what one request can cost, in USD (0 without prices).

        Prompt tokens are bounded by the prompt's UTF-8 bytes: every byte-level BPE (GPT, Llama 3) and
        every byte-fallback SentencePiece (Gemma, Llama 2) token covers at least one byte, whereas a
        characters-per-token ratio under-counts text such as CJK, digits or code. Plus a slack for the
        BOS token and the chat template's tokens per message. Completion tokens: all of max_tokens.
        No tokenizer is asked: the server's own is not at hand, and the bound holds for all of them.
        """
        cfg = self.config
        if cfg.price_in is None or cfg.price_out is None:
            return 0.0
        if "messages" in wire:
            texts = [m["content"] for m in wire["messages"]]
        else:
            texts = [wire["prompt"]]
        prompt_bound = sum(len(t.encode("utf-8")) + PROMPT_SLACK_TOKENS for t in texts) + PROMPT_SLACK_TOKENS
        return (prompt_bound * cfg.price_in + wire["max_tokens"] * cfg.price_out) / 1e6

    async def _reserve(self, wire: dict[str, Any]) -> float:
        """Claim budget for one HTTP request, or raise BudgetExceeded before sending it.

        --max-cost: each request in flight holds its worst case (`worst_case_cost`) until its real cost is
        known. A request that does not fit waits while others are in flight, since they usually cost far less
        than they hold; it is refused only when nothing is in flight and it still does not fit. So spend stays
        under the cap as long as the server counts no more tokens than the bound.
        """
        cfg = self.config
        estimate = 0.0
        if cfg.max_cost is not None:
            estimate = self.worst_case_cost(wire)

            def fits() -> bool:
                return self.usage.cost + self._reserved_cost + estimate <= cfg.max_cost

            async with self._budget_changed:
                await self._budget_changed.wait_for(lambda: fits() or self._reservations == 0)
        # No await from here to the claim: the checks and the claim are one step for every other task.
        go_on = "; answers so far are cached, re-run with a higher cap to go on"
        if cfg.max_llm_calls is not None and self.usage.requests >= cfg.max_llm_calls:
            cap = f"stopped before passing --max-llm-calls={cfg.max_llm_calls}"
            raise BudgetExceeded(cap + go_on, cap=cap)
        if cfg.max_cost is not None and self.usage.cost + self._reserved_cost + estimate > cfg.max_cost:
            cap = (f"stopped before passing --max-cost={cfg.max_cost} USD (spent {self.usage.cost:.4f}; the next call "
                   f"could cost up to {estimate:.4f})")
            raise BudgetExceeded(cap + go_on, cap=cap)
        self.usage.requests += 1
        self._reserved_cost += estimate
        self._reservations += 1
        return estimate

    async def _release(self, estimate: float) -> None:
        self._reserved_cost -= estimate
        self._reservations -= 1
        if self.config.max_cost is not None:
            async with self._budget_changed:
                self._budget_changed.notify_all()

    def _record(self, prompt_tokens: int, completion_tokens: int) -> None:
        u, cfg = self.usage, self.config
        u.answers += 1
        u.prompt_tokens += prompt_tokens
        u.completion_tokens += completion_tokens
        if cfg.price_in is not None and cfg.price_out is not None:
            u.cost += (prompt_tokens * cfg.price_in + completion_tokens * cfg.price_out) / 1e6

    async def _call(self, wire: dict[str, Any]) -> LLMResult:
        send = self._send_until_repeat if wire.get("stop_repeats") else self._send
        async with self._sem:
            return await self._with_retries(wire, lambda: send(wire))

    async def _send_until_repeat(self, wire: dict[str, Any]) -> LLMResult:
        """One streamed request, closed as soon as the answer repeats a sentence (finish reason "repeat").

        A stream closed early reports no usage: its completion tokens are counted as the pieces received (a
        token each on llama.cpp and OpenAI) and its prompt tokens as a UTF-8 byte each, the cost cap's bound.
        """
        estimate = await self._reserve(wire)
        text, pieces, finish, usage = "", 0, None, None
        try:
            stream = await self._create(wire, {**self._params(wire), "stream": True})
            try:
                async for chunk in stream:
                    usage = getattr(chunk, "usage", None) or usage
                    if not chunk.choices:
                        continue
                    c = chunk.choices[0]
                    piece = (c.delta.content or "") if wire["endpoint"] == "chat" else (c.text or "")
                    text, pieces, finish = text + piece, pieces + bool(piece), c.finish_reason or finish
                    if piece and (at := first_repeat(text)) is not None:
                        text, finish = text[:at].rstrip(), "repeat"
                        break
            finally:
                await stream.close()
            if finish != "repeat" and (at := first_repeat(text, final=True)) is not None:
                text, finish = text[:at].rstrip(), "repeat"
            if usage is not None and finish != "repeat":
                pt, ct = usage.prompt_tokens, usage.completion_tokens
            else:
                sent = wire.get("prompt") or "".join(m["content"] for m in wire["messages"])
                pt, ct = len(sent.encode("utf-8")), pieces
            self._record(pt, ct)
        except ValueError as e:  # a chunk that is not the JSON it claims
            raise MalformedResponse(f"the stream is not valid JSON ({str(e)[:80]})") from None
        finally:
            await self._release(estimate)
        return LLMResult(text=text, prompt_tokens=pt, completion_tokens=ct, finish_reason=finish)

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
            what = f"HTTP {status}" if status else type(e).__name__
            detail = redact(str(e), self.config.api_key).splitlines()[0][:300] if str(e) else ""
            url = self.where
            raise LLMError(f"LLM call to {url} failed after {attempts} tries: {what}: {detail}"
                           f"{refused_field_note(status, detail, wire.get('extra'))}") from None
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

    async def _send(self, wire: dict[str, Any]) -> LLMResult:
        estimate = await self._reserve(wire)
        try:
            limit_field = self._limit_field
            try:
                r = await self._create(wire, self._params(wire, limit_field))
            except ValueError as e:  # a 200 whose body is not the JSON it claims (cut off, garbled)
                raise MalformedResponse(f"the answer is not valid JSON ({str(e)[:80]})") from None
            except openai.BadRequestError as e:
                if limit_field != "max_tokens" or not refuses_max_tokens(e):
                    raise
                r = None  # sent again below with the other field, once the reservation is given back
            if r is None:
                pass
            elif wire["endpoint"] == "chat":
                if not r.choices or r.choices[0].message is None:
                    raise MalformedResponse("no choices in the answer")
                text = r.choices[0].message.content or ""
            else:
                if not r.choices:
                    raise MalformedResponse("no choices in the answer")
                text = r.choices[0].text or ""
            if r is not None:
                pt = r.usage.prompt_tokens if r.usage else 0
                ct = r.usage.completion_tokens if r.usage else 0
                self._record(pt, ct)  # before the reservation goes, so a waiting request sees the real cost
        finally:
            await self._release(estimate)
        if r is None:
            if self._limit_field == "max_tokens":
                self._limit_field = "max_completion_tokens"
                log.warning("the LLM refuses max_tokens: sending max_completion_tokens from now on "
                            "(--token-limit-field max_completion_tokens says so from the start)")
            return await self._send(wire)  # a new HTTP request: reserved and counted like any other
        return LLMResult(text=text, prompt_tokens=pt, completion_tokens=ct, finish_reason=r.choices[0].finish_reason)
