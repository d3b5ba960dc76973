"""Micro-batching of hints: requests that arrive within a few milliseconds share one forward pass.

One worker task drains a queue: the first waiting request opens a window of `wait_s`, every request
that arrives in it (or while the previous forward pass ran) joins, up to `max_batch`. The forward pass
runs in one dedicated thread, so the event loop keeps accepting requests meanwhile, and two passes
never run at once (torch would only split the same cores between them).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dsp.errors import DSPError
from dsp.policy.base import HintPolicy


@dataclass
class BatchStats:
    """What the policy did; the metrics and the tests read it."""

    forward_calls: int = 0
    hints: int = 0
    forward_seconds: float = 0.0
    sizes: Counter = field(default_factory=Counter)  # batch size -> forward passes of that size


class HintBatcher:
    def __init__(self, policy: HintPolicy, *, max_batch: int = 32, wait_s: float = 0.002):
        if max_batch < 1:
            raise DSPError(f"--max-batch must be at least 1, not {max_batch}")
        if wait_s < 0:
            raise DSPError(f"--batch-wait-ms must be 0 or more, not {wait_s * 1000:g}")
        self.policy = policy
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.stats = BatchStats()
        self._queue: list[tuple[str, asyncio.Future]] = []
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsp-policy")

    async def hint(self, text: str) -> str:
        """The policy's greedy hint for `text`, computed with whatever other requests are waiting."""
        loop = asyncio.get_running_loop()
        if self._arrived is None:
            self._arrived = asyncio.Event()
        future = loop.create_future()
        self._queue.append((text, future))
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _gather(self) -> None:
        """Wait up to `wait_s` from now for the batch to fill."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while len(self._queue) < self.max_batch:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self.wait_s > 0:
                await self._gather()
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            batch = [(t, f) for t, f in batch if not f.done()]  # a client that hung up needs no hint
            if not batch:
                continue
            texts = [t for t, _ in batch]
            start = time.perf_counter()
            try:
                # batch_size=len(texts): the whole batch in one forward pass
                hints = await loop.run_in_executor(
                    self._pool, lambda: self.policy.generate(texts, batch_size=len(texts))
                )
            except Exception as e:  # one bad batch fails its requests, not the server
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
                continue
            finally:
                s = self.stats
                s.forward_calls += 1
                s.forward_seconds += time.perf_counter() - start
                s.sizes[len(texts)] += 1
            self.stats.hints += len(texts)
            for (_, f), h in zip(batch, hints):
                if not f.done():
                    f.set_result(h)
