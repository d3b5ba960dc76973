"""Run the app under uvicorn, inside the LLM session every command uses (the embedded LLM when no endpoint)."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dsp.errors import DSPError
from dsp.llm.session import run_with_llm
from dsp.llm.types import LLMConfig
from dsp.policy.base import HintPolicy
from dsp.serve.batcher import HintBatcher

TOKEN_ENV = "DSP_SERVE_TOKEN"


@dataclass
class Listen:
    host: str = "127.0.0.1"
    port: int = 8000
    """0 picks a free port; `ready` is told which."""


def bind(listen: Listen) -> socket.socket:
    """The listening socket, bound here so a taken port is one line (uvicorn would exit the process)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it every answer
    # (headers and body sent apart) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
        sock.listen(1024)  # connections made before uvicorn starts wait here, not refused
    except OSError as e:
        sock.close()
        raise DSPError(f"cannot listen on {listen.host}:{listen.port}: {e.strerror or e}") from None
    return sock


def serve(
    policy: HintPolicy,
    task,
    llm: LLMConfig,
    cache_path: str | Path | None,
    options,
    listen: Listen,
    *,
    max_batch: int = 32,
    batch_wait_s: float = 0.002,
    log_path: Path | None = None,
    ready: Callable[[str, "object"], None] | None = None,
) -> None:
    """Serve until stopped (Ctrl-C, SIGTERM, or `server.should_exit = True` from `ready`'s second argument).

    `ready(url, server)` is called once the port listens, with the base URL (…/v1) and uvicorn's server.
    `options.model` may be None: it becomes the upstream model's name once the LLM is open.
    """
    try:
        import uvicorn

        from dsp.serve.app import build_app
    except ImportError:
        raise DSPError("dsp serve needs the serve extra: pip install -e '.[serve]' (FastAPI and uvicorn)") from None

    batcher = HintBatcher(policy, max_batch=max_batch, wait_s=batch_wait_s)

    async def work(client) -> None:
        if hasattr(client, "pool"):  # the embedded LLM: up before the port opens, not on the first request
            await client.pool.start()
        options.model = options.model or client.config.model
        options.endpoint = client.config.endpoint
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(log_path.open("a", encoding="utf-8")) if log_path else None
            app = build_app(batcher, client, task, options, log=log)
            # access_log off: a request line is not secret, but nothing per request goes to the log unasked
            server = uvicorn.Server(
                uvicorn.Config(
                    app, host=listen.host, port=listen.port, log_level="warning", access_log=False, lifespan="off"
                )
            )
            sock = stack.enter_context(bind(listen))
            if ready is not None:  # the socket is bound: connections wait in its backlog until uvicorn accepts
                ready(f"http://{listen.host}:{sock.getsockname()[1]}/v1", server)
            await server.serve(sockets=[sock])

    try:
        run_with_llm(llm, cache_path, work)
    finally:
        batcher.close()
