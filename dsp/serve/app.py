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
from typing import IO, Any, AsyncIterator, Literal, Sequence
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dsp.data import Example
from dsp.errors import BudgetExceeded, LLMError
from dsp.llm.client import AsyncLLMClient, LLMRequest
from dsp.serve.batcher import HintBatcher
from dsp.serve.metrics import ServerMetrics

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
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def build_app(batcher: HintBatcher, client: AsyncLLMClient, task, options: ServeOptions,
              log: IO[str] | None = None) -> FastAPI:
    """The app; everything it uses is passed in (nothing global), so tests and benchmarks build their own.

    `log`: an open text file that gets one JSON line per answered request (the caller closes it).
    """
    metrics = ServerMetrics()
    app = FastAPI(title="dsp serve", docs_url=None, redoc_url=None, openapi_url=None)
    upstream_url = client.where

    @app.exception_handler(OpenAIError)
    async def _openai_error(request: Request, e: OpenAIError):
        metrics.requests[(request.url.path, e.status)] += 1
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid body"}
        if first.get("type") == "json_invalid":  # its loc is the character position, not a field
            return await _openai_error(request, OpenAIError(400, "the body is not valid JSON"))
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        where = f"{param}: " if param else ""
        return await _openai_error(request, OpenAIError(400, f"{where}{first['msg']}", param=param))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        # one line, no traceback, no request text: the client learns the kind, the server log too
        return await _openai_error(request, OpenAIError(500, f"internal error: {type(e).__name__}", "server_error"))

    async def authorized(request: Request) -> None:  # async: a plain def would hop to a worker thread
        if options.token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), options.token.encode()):
            raise OpenAIError(401, "missing or wrong bearer token (Authorization: Bearer <DSP_SERVE_TOKEN>)",
                              code="invalid_api_key")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics", dependencies=[Depends(authorized)])
    async def prometheus():
        return PlainTextResponse(metrics.render(client.usage, batcher.stats), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models():
        metrics.requests[("/v1/models", 200)] += 1
        return {"object": "list", "data": [{"id": options.model, "object": "model", "owned_by": "dsp"}]}

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(body: CompletionBody, request: Request):
        return await answer(request, body, "completions", body.prompt, None)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat(body: ChatBody, request: Request):
        last = max((i for i, m in enumerate(body.messages) if m.role == "user"), default=None)
        if last is None:
            raise OpenAIError(400, "messages: no user message (its text is the input to hint)", param="messages")
        return await answer(request, body, "chat", body.messages[last].text(), (body.messages, last))

    async def answer(request: Request, body: Sampling, kind: str, text: str, chat: tuple | None):
        start = time.perf_counter()
        if body.model != options.model:
            raise OpenAIError(400, f"unknown model '{body.model}': this server serves '{options.model}'",
                              param="model", code="model_not_found")
        # With dsp.input, the request's text is the app's own template and dsp.input the raw input.
        own_template = body.dsp is not None and body.dsp.input is not None
        raw = body.dsp.input if own_template else text
        if not raw.strip():
            raise OpenAIError(400, "the input is empty", param="dsp.input" if own_template else _text_param(kind))
        if len(raw) > options.max_input_chars or len(text) > options.max_input_chars:
            raise OpenAIError(400, f"the input is longer than this server's limit of {options.max_input_chars} "
                                   "characters (--max-input-chars)", param=_text_param(kind))
        if own_template and "{hint}" not in text:
            raise OpenAIError(400, "with dsp.input the prompt is your template and needs a {hint} slot",
                              param=_text_param(kind))

        try:
            hint = await batcher.hint(raw)
        except Exception as e:
            raise OpenAIError(500, f"the policy failed on this input: {type(e).__name__}", "server_error") from None
        hint_s = time.perf_counter() - start
        metrics.hint_seconds.observe(hint_s)
        if own_template:
            prompt, stop = text.replace("{hint}", hint), ()
        else:
            prompt, stop = task.prompt(Example(id="request", input=raw, target=""), hint, options.shots), task.stop
        if isinstance(body.stop, str):
            stop = (body.stop,)
        elif body.stop:
            stop = tuple(body.stop)
        messages = None
        if chat is not None and options.endpoint == "chat":  # the conversation goes on, its last question hinted
            msgs, last = chat
            messages = tuple((m.role, prompt if i == last else m.text()) for i, m in enumerate(msgs))
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens or task.max_tokens
        req = LLMRequest(prompt=None if messages else prompt, messages=messages, max_tokens=max_tokens,
                         temperature=body.temperature, top_p=body.top_p, stop=stop, seed=body.seed,
                         extra=tuple(sorted(task.sampling.items())))
        info = {"hint": hint, "hint_ms": round(hint_s * 1000, 3)}
        headers = {HINT_HEADER: quote(hint, safe=" ;,")}
        ids = {"id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-dsp-{uuid.uuid4().hex[:24]}",
               "created": int(time.time()), "model": options.model}
        upstream_start = time.perf_counter()
        if body.stream:
            # The first piece is awaited here, so a spent budget or a dead upstream is still an HTTP status.
            pieces = client.stream(req)
            first = await upstream(anext(pieces, ""))
            return StreamingResponse(stream(request, kind, first, pieces, ids, info, raw, start, upstream_start),
                                     headers=headers, media_type="text/event-stream")
        result = await upstream(client.complete(req))
        upstream_s = time.perf_counter() - upstream_start
        metrics.upstream_seconds.observe(upstream_s)
        info.update(upstream_ms=round(upstream_s * 1000, 3), cached=result.cached)
        choice: dict[str, Any] = {"index": 0, "finish_reason": result.finish_reason or "stop", "logprobs": None}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": result.text}
        else:
            choice["text"] = result.text
        usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                 "total_tokens": result.prompt_tokens + result.completion_tokens}
        write_log(raw, hint, result.text, start, hint_s, upstream_s, usage, result.cached)
        metrics.requests[(request.url.path, 200)] += 1
        out = {**ids, "object": "chat.completion" if kind == "chat" else "text_completion", "choices": [choice],
               "usage": usage, "dsp": info}
        return JSONResponse(out, headers=headers)

    async def upstream(call):
        try:
            return await call
        except BudgetExceeded as e:
            raise OpenAIError(429, f"this server's LLM budget is spent: {e}", "insufficient_quota",
                              code="dsp_budget_exceeded") from None
        except LLMError as e:
            raise OpenAIError(502, f"upstream LLM failed: {str(e).replace(upstream_url, 'the upstream')}",
                              "upstream_error") from None

    async def stream(request: Request, kind: str, first: str, pieces: AsyncIterator[str], ids: dict, info: dict,
                     raw: str, start: float, upstream_start: float):
        """Server-sent events in OpenAI's chunk shape; a failure mid-way is an error event, then [DONE]."""
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def event(choice: dict | None, **extra) -> str:
            return f"data: {json.dumps({**ids, 'object': obj, 'choices': [choice] if choice else [], **extra})}\n\n"

        def piece(text: str, finish: str | None = None) -> dict:
            c: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            if kind == "chat":
                c["delta"] = {"content": text} if text or finish is None else {}
            else:
                c["text"] = text
            return c

        texts = [first]
        status = 200
        try:
            if kind == "chat":  # the role first, as OpenAI does
                yield event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            yield event(piece(first))
            async for text in pieces:
                texts.append(text)
                yield event(piece(text))
            upstream_s = time.perf_counter() - upstream_start
            metrics.upstream_seconds.observe(upstream_s)
            yield event(piece("", "stop"), dsp={**info, "upstream_ms": round(upstream_s * 1000, 3)})
            answer = "".join(texts)
            write_log(raw, info["hint"], answer, start, info["hint_ms"] / 1000, upstream_s,
                      {"prompt_tokens": None, "completion_tokens": None}, None)
        except LLMError as e:
            status = 502
            message = str(e).replace(upstream_url, "the upstream")
            yield f"data: {json.dumps({'error': {'message': message, 'type': 'upstream_error', 'code': status}})}\n\n"
        finally:
            metrics.requests[(request.url.path, status)] += 1
        yield "data: [DONE]\n\n"

    def write_log(raw: str, hint: str, answer: str, start: float, hint_s: float, upstream_s: float,
                  usage: dict, cached: bool | None) -> None:
        """One line per answered request, in the fields `dsp eval`/`dsp sft --data` read (the task's)."""
        if log is None:
            return
        row = {"id": f"req-{uuid.uuid4().hex[:16]}", options.input_field: raw, options.target_field: answer,
               "hint": hint, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "latency_ms": round((time.perf_counter() - start) * 1000, 3), "hint_ms": round(hint_s * 1000, 3),
               "upstream_ms": round(upstream_s * 1000, 3), **usage, "cached": cached}
        log.write(json.dumps(row, ensure_ascii=False) + "\n")
        log.flush()  # a killed server loses no answered request

    return app


def _text_param(kind: str) -> str:
    return "messages" if kind == "chat" else "prompt"
