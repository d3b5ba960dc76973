"""An OpenAI-compatible server on loopback, for tests and benchmarks of the client.

It answers /v1/completions, /v1/chat/completions (both also with `stream: true`, a word an event)
and /v1/models. Answers are deterministic:
at temperature 0 the text echoes the line of the prompt just before its last line (with a
"Keywords:" hint that is the hint, so hints change scores the way they should); at temperature
> 0 a per-request counter is appended, so samples differ.

Faults, two ways: scripted (the first requests take the (status, headers, body) entries of
`faults` in order), or drawn at `fault_rate` from `fault_kinds` (429 with and without
Retry-After, 500/502/503, an answer slower than the client's timeout, a connection closed
mid-answer, malformed JSON, empty `choices`). A drawn fault depends only on the seed, the
request body and how many times that body was asked before, so a run's faults are the same
whatever order concurrent requests arrive in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _open_event() -> threading.Event:
    e = threading.Event()
    e.set()
    return e


@dataclass
class ServerState:
    """What the server was asked and how to answer; tests read and set it."""

    latency: float = 0.0
    faults: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    counter: int = 0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ()
    seed: int = 0
    slow_seconds: float = 2.0
    die_after: int | None = None  # the process kills itself with `die_signal` on completion number die_after + 1
    die_signal: int = 0
    # Completions wait while this is clear: a test holds a client mid-run (its calls sent, none answered).
    gate: threading.Event = field(default_factory=lambda: _open_event())
    reject_max_tokens: bool = False  # answer 400 to `max_tokens`, as OpenAI's reasoning models do
    refuse_fields: tuple[str, ...] = ()  # answer 400 to these body fields, as OpenAI does to fields it does not know
    ignore_stream: bool = False  # answer `stream: true` with plain JSON, as some OpenAI-compatible servers do
    attempts: Counter = field(default_factory=Counter)  # request body -> times asked
    injected: Counter = field(default_factory=Counter)  # fault kind -> times injected
    lock: threading.Lock = field(default_factory=threading.Lock)

    def draw_fault(self, body: dict[str, Any]) -> str | None:
        """The fault for this request, decided by (seed, body, attempt); call under the lock."""
        if not self.fault_rate:
            return None
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        attempt = self.attempts[key]
        self.attempts[key] += 1
        rng = random.Random(f"{self.seed}:{key}:{attempt}")
        if rng.random() >= self.fault_rate:
            return None
        kind = rng.choice(self.fault_kinds or FAULT_KINDS)
        self.injected[kind] += 1
        return kind


FAULT_KINDS = ("429_retry_after", "429", "500", "502", "503", "slow", "disconnect", "malformed_json", "empty_choices")


def echo_answer(prompt: str, max_tokens: int) -> str:
    lines = [ln for ln in prompt.rstrip().splitlines() if ln.strip()]
    source = lines[-2] if len(lines) >= 2 else (lines[0] if lines else "")
    if ":" in source:
        source = source.split(":", 1)[1]
    return " ".join(source.split()[:max_tokens])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits ~40 ms on a delayed ACK

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "test-model", "object": "model"}]}).encode())
        elif self.path.rstrip("/").endswith("/_stats"):  # for a benchmark in another process: what reached us
            with state.lock:
                stats = {"requests": state.counter, "max_inflight": state.max_inflight}
            self._send(200, json.dumps(stats).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if len(raw) < length:  # the client died mid-request (a killed run): nothing arrived to answer or record
            return
        body = json.loads(raw or b"{}")
        with state.lock:
            if self.server.keep_requests:  # type: ignore[attr-defined]
                state.requests.append(body)
                state.auth_headers.append(self.headers.get("Authorization", ""))
            state.counter += 1
            count = state.counter
            if state.die_after is not None and count > state.die_after:
                # A stand-in for a server that crashes (SIGILL, OOM kill). Sent to this very thread, so
                # it lands before the answer could be written; a signal to the process may not.
                signal.pthread_kill(threading.get_ident(), state.die_signal)
            fault = state.faults.pop(0) if state.faults else None
            drawn = state.draw_fault(body) if fault is None else None
            state.inflight += 1
            state.max_inflight = max(state.max_inflight, state.inflight)
        try:
            state.gate.wait(timeout=300)
            if state.latency:
                time.sleep(state.latency)
            if fault is not None:
                status, headers, text = fault
                self._send(status, text.encode(), headers)
                return
            if drawn is not None and self._drawn_fault(drawn, state):
                return
            if self._refused(state, body):
                return
            chat = self.path.rstrip("/").endswith("/chat/completions")
            answer = self._answer(body, chat, count, empty=drawn == "empty_choices")
            if body.get("stream") and not state.ignore_stream:
                self._stream(answer, chat, bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                self._send(200, json.dumps(answer).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout) before a slow answer came
        finally:
            with state.lock:
                state.inflight -= 1

    def _refused(self, state: ServerState, body: dict[str, Any]) -> bool:
        """Answer 400 to a field this server was told to refuse; False if it takes them all."""
        if state.reject_max_tokens and "max_tokens" in body:
            self._send(
                400,
                json.dumps(
                    {
                        "error": {
                            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                            "Use 'max_completion_tokens' instead.",
                            "type": "invalid_request_error",
                            "param": "max_tokens",
                            "code": "unsupported_parameter",
                        }
                    }
                ).encode(),
            )
            return True
        if refused := [f for f in state.refuse_fields if f in body]:
            self._send(
                400,
                json.dumps(
                    {
                        "error": {
                            "message": f"Unrecognized request argument supplied: {refused[0]}",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    }
                ).encode(),
            )
            return True
        return False

    @staticmethod
    def _answer(body: dict[str, Any], chat: bool, count: int, empty: bool) -> dict[str, Any]:
        """The echo answer to one request, in the OpenAI shape (`choices` empty for the empty_choices fault)."""
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        text = echo_answer(prompt, int(body.get("max_tokens", body.get("max_completion_tokens", 16))))
        if float(body.get("temperature", 1.0)) > 0:
            text += f" #{count}"
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        # usage counts every message of a chat request (a token per word), as a real server counts them all
        counted = " ".join(m.get("content") or "" for m in body["messages"]) if chat else prompt
        return {
            "id": f"cmpl-{count}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [] if empty else [choice],
            "usage": {
                "prompt_tokens": len(counted.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(counted.split()) + len(text.split()),
            },
        }

    def _stream(self, answer: dict[str, Any], chat: bool, include_usage: bool) -> None:
        """The answer as server-sent events, a word a chunk, then [DONE]; the body ends when the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.close_connection = True
        base = {k: answer[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk" if chat else "text_completion"
        if not answer["choices"]:  # the empty_choices fault: events that carry no choice at all
            self.wfile.write(f"data: {json.dumps({**base, 'choices': []})}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            return
        choice = answer["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            last = i == len(words) - 1
            c: dict[str, Any] = {"index": 0, "finish_reason": "stop" if last else None}
            if chat:
                c["delta"] = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            else:
                c["text"] = piece
            self.wfile.write(f"data: {json.dumps({**base, 'choices': [c]})}\n\n".encode())
            self.wfile.flush()
        if include_usage:
            self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': answer['usage']})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _drawn_fault(self, kind: str, state: ServerState) -> bool:
        """Answer with fault `kind`; False for kinds that shape a normal answer instead (slow, empty)."""
        error = json.dumps({"error": {"message": f"injected {kind}", "type": "server_error"}}).encode()
        if kind == "429_retry_after":
            self._send(429, error, {"Retry-After": "0.05"})
        elif kind in ("429", "500", "502", "503"):
            self._send(int(kind), error)
        elif kind == "malformed_json":
            self._send(200, b'{"id": "cmpl-x", "choices": [{"text": "trunc')
        elif kind == "disconnect":
            body = b'{"id": "cmpl-x", "object": "text_completion", "choices": [{"index": 0, "text": "half an ans'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) * 2))  # promise more than is sent
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif kind == "slow":
            time.sleep(state.slow_seconds)
            return False
        else:
            return False
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # high concurrency must not drop connections


class TestServer:
    """`with TestServer() as s:` gives `s.base_url` and `s.state`."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = (),
        seed: int = 0,
        slow_seconds: float = 2.0,
        port: int = 0,
        keep_requests: bool = True,
    ):
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self.state = ServerState(
            latency=latency, fault_rate=fault_rate, fault_kinds=fault_kinds, seed=seed, slow_seconds=slow_seconds
        )
        self.keep_requests = keep_requests
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state  # type: ignore[attr-defined]
        self._server.keep_requests = keep_requests  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "TestServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Serve until killed, for benchmarks that want the server out of their own process (and GIL)."""
    ap = argparse.ArgumentParser(prog="python -m dsp.llm.testserver", description=main.__doc__)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds each answer waits")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free one")
    ap.add_argument(
        "--die-after",
        type=int,
        default=None,
        metavar="N",
        help="kill this process with --die-signal on completion N+1 (a stand-in for a crashing server)",
    )
    ap.add_argument("--die-signal", default="SIGILL", help="signal name for --die-after")
    args = ap.parse_args(argv)
    # a long benchmark would otherwise hold every request body in memory
    with TestServer(latency=args.latency, port=args.port, keep_requests=False) as server:
        server.state.die_after, server.state.die_signal = args.die_after, signal.Signals[args.die_signal].value
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
