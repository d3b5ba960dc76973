"""The embedded LLM as a client backend: its server processes start on the first call that needs one.

A command whose every answer is in the cache starts no server at all. When one is needed, the pool starts
its processes (one per `ServerSpec.command`), waits until each answers a real completion, and hands each
request to the least busy one. Several one-slot processes rather than one server with several slots: a
slot decodes beside no other request, so a greedy answer is the same whichever process serves it and
whatever else runs (BENCHMARKS.md, "The embedded test bed").
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import openai

from dsp.errors import DSPError, LLMBackendGone
from dsp.llm.client import AsyncLLMClient
from dsp.llm.local import LocalServer, PoolSpec, free_port, spawn, stop, term_raises, wait_ready
from dsp.llm.types import LLMConfig


class EmbeddedPool:
    """The running processes (none until `start`), each with its SDK client and its count of requests in flight."""

    def __init__(self, spec: PoolSpec, startup_timeout: float = 180.0):
        self.spec, self.startup_timeout = spec, startup_timeout
        self.servers: list[LocalServer] = []
        self._apis: list[openai.AsyncOpenAI] = []
        self._busy: list[int] = []
        self._lock: asyncio.Lock | None = None
        self._failure: LLMBackendGone | None = None
        self.clients = 0  # open EmbeddedClients: the last to close closes the SDK clients

    @property
    def started(self) -> bool:
        return bool(self._apis)

    def exit_reason(self) -> str | None:
        """None while every process runs (or none was started); one line once one has died."""
        return next((why for s in self.servers if (why := s.exit_reason()) is not None), None)

    async def start(self) -> None:
        """Start every process (once, whoever asks first) and wait until each answers a completion."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._failure is not None:
                raise self._failure  # every waiting call fails with the one line, none starts it again
            if self._apis:
                return
            # Spawned from the event loop's thread, which lives as long as the command: a child asks to be
            # killed when the thread that forked it ends (PR_SET_PDEATHSIG), so never fork from a worker thread.
            try:
                for command in self.spec.commands:
                    port = free_port()
                    self.servers.append(spawn(command(port), port, self.spec.cache_namespace, self.spec.slots))
                await asyncio.gather(*(asyncio.to_thread(wait_ready, s, self.startup_timeout) for s in self.servers))
            except DSPError as e:
                self._failure = e if isinstance(e, LLMBackendGone) else LLMBackendGone(str(e))
                raise self._failure from None
            self._connect()

    def _connect(self) -> None:
        # A new loopback connection per request: the server drops an idle kept-alive one after a few seconds, and
        # a request sent on it just then fails (RemoteProtocolError, about 1 call in 40), costing a retry.
        self._apis = [
            openai.AsyncOpenAI(
                api_key="no-key", base_url=s.base_url, max_retries=0, default_headers={"Connection": "close"}
            )
            for s in self.servers
        ]
        self._busy = [0] * len(self.servers)

    @contextlib.asynccontextmanager
    async def lease(self):
        """The SDK client of the least busy process, held for one request."""
        await self.start()
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            yield self._apis[i]
        finally:
            self._busy[i] -= 1

    async def release(self) -> None:
        """One client less; the last one closes the SDK clients (an event loop's connections end with it)."""
        self.clients -= 1
        if self.clients == 0:
            for api in self._apis:
                await api.close()
            self._apis, self._lock = [], None

    def stop(self) -> None:
        for server in self.servers:
            stop(server)


@contextlib.contextmanager
def embedded_pool(spec: PoolSpec, startup_timeout: float = 180.0):
    """A pool that starts nothing yet, and stops whatever it started however we leave (SIGTERM included)."""
    pool = EmbeddedPool(spec, startup_timeout)
    with term_raises():
        try:
            yield pool
        finally:
            pool.stop()


class EmbeddedClient(AsyncLLMClient):
    """The client with the embedded pool as its backend (the `_create` seam): cache, budget and retries as ever."""

    def __init__(self, config: LLMConfig, cache, pool: EmbeddedPool):
        super().__init__(config, cache, backend_gone=pool.exit_reason)
        self.pool = pool
        pool.clients += 1

    @property
    def where(self) -> str:
        return "the embedded LLM"

    async def _create(self, wire: dict[str, Any], params: dict[str, Any]):
        async with self.pool.lease() as api:
            timeout = self.config.timeout
            if wire["endpoint"] == "chat":
                return await api.chat.completions.create(messages=wire["messages"], timeout=timeout, **params)
            return await api.completions.create(prompt=wire["prompt"], timeout=timeout, **params)

    async def check_reachable(self) -> None:
        """Nothing to check before a call: the pool checks each process with a real completion as it starts."""

    async def aclose(self) -> None:
        await self.pool.release()
        await super().aclose()
