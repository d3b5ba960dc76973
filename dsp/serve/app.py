"""The OpenAI-compatible app: the request's text is the task's raw input, the policy writes its hint,
the task's with-hint template (or the request's own, with a `{hint}` slot) makes the prompt, and the
project's LLM client (cache, retries, concurrency, caps) calls the upstream.

FastAPI (on Starlette) for the HTTP: pydantic checks each body's types, and one handler turns every
failure into OpenAI's error shape, so an application's SDK raises its usual exceptions.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import IO, Any, AsyncIterator, Awaitable, Literal, Sequence
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dsp.data import Example
from dsp.errors import BudgetExceeded, LLMError
from dsp.llm.client import AsyncLLMClient
from dsp.llm.types import LLMRequest
from dsp.serve.batcher import HintBatcher
from dsp.serve.metrics import ServerMetrics
from dsp.tasks.base import Task

HINT_HEADER = "X-DSP-Hint"  # percent-encoded UTF-8: a header carries latin-1 only


@dataclass
class ServeOptions:
    model: str
    """The upstream model's name: the one name this server answers to."""
    endpoint: str = "completions"
    """How the upstream is called (--endpoint), whatever shape the request came in."""
    token: str | None = field(default=None, repr=False)
    """Bearer token every request but /health must bring (None: no check)."""
    max_input_chars: int = 100_000
    input_field: str = "article"
    target_field: str = "highlights"
    shots: Sequence[Example] = ()


class DSPExtra(BaseModel):
    """`extra_body={"dsp": {...}}`: the raw input for the policy, the prompt then being the app's template."""

    model_config = ConfigDict(extra="forbid")
    input: str | None = None


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")  # user, logprobs, ...: accepted, not forwarded
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)  # 0 when absent: the task's greedy answer, cacheable
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    dsp: DSPExtra | None = None


class CompletionBody(Sampling):
    prompt: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: the text ones
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatBody(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def build_app(
    batcher: HintBatcher, client: AsyncLLMClient, task: Task, options: ServeOptions, log: IO[str] | None = None
) -> FastAPI:
    """The app: its routes and error handlers; each request's work is `Handler`'s. Everything it uses is passed
    in (nothing global), so tests and benchmarks build their own.

    `log`: an open text file that gets one JSON line per answered request (the caller closes it).
    """
    handler = Handler(batcher, client, task, options, ServerMetrics(), log)
    metrics = handler.metrics
    app = FastAPI(title="dsp serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(OpenAIError)
    async def _openai_error(request: Request, e: OpenAIError):
        metrics.requests[(request.url.path, e.status)] += 1
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, e: RequestValidationError):
        return await _openai_error(request, body_error(e))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        # one line, no traceback, no request text: the client learns the kind, the server log too
        return await _openai_error(request, OpenAIError(500, f"internal error: {type(e).__name__}", "server_error"))

    authorized = [Depends(handler.authorize)]

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics", dependencies=authorized)
    async def prometheus():
        return PlainTextResponse(metrics.render(client.usage, batcher.stats), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", dependencies=authorized)
    async def models():
        metrics.requests[("/v1/models", 200)] += 1
        return {"object": "list", "data": [{"id": options.model, "object": "model", "owned_by": "dsp"}]}

    @app.post("/v1/completions", dependencies=authorized)
    async def completions(body: CompletionBody, request: Request):
        return await handler.answer(request.url.path, body, "completions", body.prompt, None)

    @app.post("/v1/chat/completions", dependencies=authorized)
    async def chat(body: ChatBody, request: Request):
        last = max((i for i, m in enumerate(body.messages) if m.role == "user"), default=None)
        if last is None:
            raise OpenAIError(400, "messages: no user message (its text is the input to hint)", param="messages")
        return await handler.answer(request.url.path, body, "chat", body.messages[last].text(), (body.messages, last))

    return app


def body_error(e: RequestValidationError) -> OpenAIError:
    """pydantic's first complaint about a body, as OpenAI's 400 naming the field."""
    first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid body"}
    if first.get("type") == "json_invalid":  # its loc is the character position, not a field
        return OpenAIError(400, "the body is not valid JSON")
    param = ".".join(str(p) for p in first["loc"] if p != "body") or None
    return OpenAIError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param)


@dataclass
class Exchange:
    """One request on its way through: where it came, its shape, its raw input and hint, and when it started."""

    path: str
    kind: str  # "completions" or "chat": the shape of the request, and of its answer
    raw: str
    start: float
    hint: str = ""
    hint_s: float = 0.0
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def text_param(self) -> str:
        return "messages" if self.kind == "chat" else "prompt"

    def info(self, upstream_s: float, **extra: Any) -> dict[str, Any]:
        """The `dsp` field of an answer: the hint and where the time went."""
        return {
            "hint": self.hint,
            "hint_ms": round(self.hint_s * 1000, 3),
            "upstream_ms": round(upstream_s * 1000, 3),
            **extra,
        }


class Handler:
    """The steps of one request: `check` it, `hint` its input, build the `upstream_request`, then `complete` or
    `stream` it, and `write_log`. Holds what every request shares: the batcher, the LLM client, the task, the
    options, the metrics and the log."""

    def __init__(
        self,
        batcher: HintBatcher,
        client: AsyncLLMClient,
        task: Task,
        options: ServeOptions,
        metrics: ServerMetrics,
        log: IO[str] | None,
    ):
        self.batcher, self.client, self.task, self.options = batcher, client, task, options
        self.metrics, self.log = metrics, log

    async def authorize(self, request: Request) -> None:  # async: a plain def would hop to a worker thread
        if self.options.token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), self.options.token.encode()):
            raise OpenAIError(
                401, "missing or wrong bearer token (Authorization: Bearer <DSP_SERVE_TOKEN>)", code="invalid_api_key"
            )

    async def answer(self, path: str, body: Sampling, kind: str, text: str, chat: tuple | None) -> Response:
        x = Exchange(path, kind, text, time.perf_counter())
        own_template = self.check(body, x, text)
        await self.hint(x)
        req = self.upstream_request(body, x, text, own_template, chat)
        x.ids = {
            "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-dsp-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": self.options.model,
        }
        headers = {HINT_HEADER: quote(x.hint, safe=" ;,")}
        if body.stream:
            return StreamingResponse(await self.stream(x, req), headers=headers, media_type="text/event-stream")
        return JSONResponse(await self.complete(x, req), headers=headers)

    def check(self, body: Sampling, x: Exchange, text: str) -> bool:
        """Refuse (400) what this server cannot answer; returns whether the request brings its own template (then
        `x.raw` becomes its dsp.input)."""
        options = self.options
        if body.model != options.model:
            raise OpenAIError(
                400,
                f"unknown model '{body.model}': this server serves '{options.model}'",
                param="model",
                code="model_not_found",
            )
        # With dsp.input, the request's text is the app's own template and dsp.input the raw input.
        own_template = body.dsp is not None and body.dsp.input is not None
        if own_template:
            x.raw = body.dsp.input
        if not x.raw.strip():
            raise OpenAIError(400, "the input is empty", param="dsp.input" if own_template else x.text_param)
        if len(x.raw) > options.max_input_chars or len(text) > options.max_input_chars:
            raise OpenAIError(
                400,
                f"the input is longer than this server's limit of {options.max_input_chars} "
                "characters (--max-input-chars)",
                param=x.text_param,
            )
        if own_template and "{hint}" not in text:
            raise OpenAIError(
                400, "with dsp.input the prompt is your template and needs a {hint} slot", param=x.text_param
            )
        return own_template

    async def hint(self, x: Exchange) -> None:
        try:
            x.hint = await self.batcher.hint(x.raw)
        except Exception as e:
            raise OpenAIError(500, f"the policy failed on this input: {type(e).__name__}", "server_error") from None
        x.hint_s = time.perf_counter() - x.start
        self.metrics.hint_seconds.observe(x.hint_s)

    def upstream_request(
        self, body: Sampling, x: Exchange, text: str, own_template: bool, chat: tuple | None
    ) -> LLMRequest:
        """The LLM call: the task's prompt (or the request's template) with the hint, the request's sampling."""
        task = self.task
        if own_template:
            prompt, stop = text.replace("{hint}", x.hint), ()
        else:
            prompt, stop = (
                task.prompt(Example(id="request", input=x.raw, target=""), x.hint, self.options.shots),
                task.stop,
            )
        if body.stop:
            stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
        messages = None
        if chat is not None and self.options.endpoint == "chat":  # the conversation goes on, its last question hinted
            msgs, last = chat
            messages = tuple((m.role, prompt if i == last else m.text()) for i, m in enumerate(msgs))
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens or task.max_tokens
        return LLMRequest(
            prompt=None if messages else prompt,
            messages=messages,
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=stop,
            seed=body.seed,
            extra=tuple(sorted(task.sampling.items())),
        )

    async def complete(self, x: Exchange, req: LLMRequest) -> dict[str, Any]:
        """The whole answer, in OpenAI's completion shape plus the `dsp` field."""
        upstream_start = time.perf_counter()
        result = await self.upstream(self.client.complete(req))
        upstream_s = time.perf_counter() - upstream_start
        self.metrics.upstream_seconds.observe(upstream_s)
        choice: dict[str, Any] = {"index": 0, "finish_reason": result.finish_reason or "stop", "logprobs": None}
        if x.kind == "chat":
            choice["message"] = {"role": "assistant", "content": result.text}
        else:
            choice["text"] = result.text
        usage = {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        }
        self.write_log(x, result.text, upstream_s, usage, result.cached)
        self.metrics.requests[(x.path, 200)] += 1
        return {
            **x.ids,
            "object": "chat.completion" if x.kind == "chat" else "text_completion",
            "choices": [choice],
            "usage": usage,
            "dsp": x.info(upstream_s, cached=result.cached),
        }

    async def stream(self, x: Exchange, req: LLMRequest) -> AsyncIterator[str]:
        """The events of a streamed answer. The first piece is awaited here, so a spent budget or a dead upstream
        is still an HTTP status."""
        upstream_start = time.perf_counter()
        pieces = self.client.stream(req)
        first = await self.upstream(anext(pieces, ""))
        return self.events(x, first, pieces, upstream_start)

    async def events(self, x: Exchange, first: str, pieces: AsyncIterator[str], upstream_start: float):
        """Server-sent events in OpenAI's chunk shape; a failure mid-way is an error event, then [DONE]."""
        chunk = ChunkShape(x)
        texts, status = [first], 200
        try:
            if x.kind == "chat":  # the role first, as OpenAI does
                yield chunk.event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            yield chunk.event(chunk.piece(first))
            async for text in pieces:
                texts.append(text)
                yield chunk.event(chunk.piece(text))
            upstream_s = time.perf_counter() - upstream_start
            self.metrics.upstream_seconds.observe(upstream_s)
            yield chunk.event(chunk.piece("", "stop"), dsp=x.info(upstream_s))
            self.write_log(x, "".join(texts), upstream_s, {"prompt_tokens": None, "completion_tokens": None}, None)
        except LLMError as e:
            status = 502
            message = str(e).replace(self.client.where, "the upstream")
            yield f"data: {json.dumps({'error': {'message': message, 'type': 'upstream_error', 'code': status}})}\n\n"
        finally:
            self.metrics.requests[(x.path, status)] += 1
        yield "data: [DONE]\n\n"

    async def upstream(self, call: Awaitable[Any]) -> Any:
        """The upstream's answer; a spent budget is HTTP 429, an upstream that failed for good 502."""
        try:
            return await call
        except BudgetExceeded as e:
            raise OpenAIError(
                429, f"this server's LLM budget is spent: {e}", "insufficient_quota", code="dsp_budget_exceeded"
            ) from None
        except LLMError as e:
            raise OpenAIError(
                502, f"upstream LLM failed: {str(e).replace(self.client.where, 'the upstream')}", "upstream_error"
            ) from None

    def write_log(self, x: Exchange, answer: str, upstream_s: float, usage: dict, cached: bool | None) -> None:
        """One line per answered request, in the fields `dsp eval`/`dsp sft --data` read (the task's)."""
        if self.log is None:
            return
        row = {
            "id": f"req-{uuid.uuid4().hex[:16]}",
            self.options.input_field: x.raw,
            self.options.target_field: answer,
            "hint": x.hint,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "latency_ms": round((time.perf_counter() - x.start) * 1000, 3),
            "hint_ms": round(x.hint_s * 1000, 3),
            "upstream_ms": round(upstream_s * 1000, 3),
            **usage,
            "cached": cached,
        }
        self.log.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.log.flush()  # a killed server loses no answered request


class ChunkShape:
    """OpenAI's streamed chunks for one answer."""

    def __init__(self, x: Exchange):
        self.ids, self.chat = x.ids, x.kind == "chat"
        self.object = "chat.completion.chunk" if self.chat else "text_completion"

    def event(self, choice: dict | None, **extra: Any) -> str:
        return f"data: {json.dumps({**self.ids, 'object': self.object, 'choices': [choice] if choice else [], **extra})}\n\n"

    def piece(self, text: str, finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if self.chat:
            c["delta"] = {"content": text} if text or finish is None else {}
        else:
            c["text"] = text
        return c
