"""The caps of one client's spending, `--max-llm-calls` and `--max-cost`, as one object every request passes.

`Budget.claim(wire)` is held for one HTTP request: it counts the request, reserves its worst-case cost (or
refuses it, `BudgetExceeded`, before it is sent) and gives the reservation back however the request ends;
`record` puts the real tokens and cost on the run's `Usage` while the claim is held, so a request waiting for
room sees the real cost and not the reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from dsp.errors import BudgetExceeded
from dsp.llm.types import LLMConfig, Usage

# Tokens a server may add to a prompt beyond its text: BOS, and per chat message its role and delimiters.
PROMPT_SLACK_TOKENS = 8
GO_ON = "; answers so far are cached, re-run with a higher cap to go on"


def sent_texts(wire: dict[str, Any]) -> list[str]:
    """The texts a request sends: its prompt, or its messages' contents."""
    return [m["content"] for m in wire["messages"]] if "messages" in wire else [wire["prompt"]]


class Budget:
    """The caps of `config` over the requests counted in `usage` (shared with the client that reports it)."""

    def __init__(self, config: LLMConfig, usage: Usage):
        self.config, self.usage = config, usage
        self._reserved = 0.0  # worst-case cost held by the requests in flight
        self._holders = 0  # requests in flight holding a claim
        self._changed = asyncio.Condition()

    @property
    def priced(self) -> bool:
        return self.config.price_in is not None and self.config.price_out is not None

    def worst_case_cost(self, wire: dict[str, Any]) -> float:
        """An upper bound on what one request can cost, in USD (0 without prices).

        Prompt tokens are bounded by the prompt's UTF-8 bytes: every byte-level BPE (GPT, Llama 3) and
        every byte-fallback SentencePiece (Gemma, Llama 2) token covers at least one byte, whereas a
        characters-per-token ratio under-counts text such as CJK, digits or code. Plus a slack for the
        BOS token and the chat template's tokens per message. Completion tokens: all of max_tokens.
        No tokenizer is asked: the server's own is not at hand, and the bound holds for all of them.
        """
        if not self.priced:
            return 0.0
        prompt_bound = sum(len(t.encode("utf-8")) + PROMPT_SLACK_TOKENS for t in sent_texts(wire)) + PROMPT_SLACK_TOKENS
        return (prompt_bound * self.config.price_in + wire["max_tokens"] * self.config.price_out) / 1e6

    @contextlib.asynccontextmanager
    async def claim(self, wire: dict[str, Any]) -> AsyncIterator[None]:
        """Hold room for one HTTP request while it runs; raises BudgetExceeded instead of letting it be sent."""
        estimate = await self._reserve(wire)
        try:
            yield
        finally:
            await self._release(estimate)

    def record(self, prompt_tokens: int, completion_tokens: int) -> None:
        """One answer's real tokens and cost (call it while the request's claim is held)."""
        u, cfg = self.usage, self.config
        u.answers += 1
        u.prompt_tokens += prompt_tokens
        u.completion_tokens += completion_tokens
        if self.priced:
            u.cost += (prompt_tokens * cfg.price_in + completion_tokens * cfg.price_out) / 1e6

    async def _reserve(self, wire: dict[str, Any]) -> float:
        """Count one request and hold its worst case, or raise BudgetExceeded.

        --max-cost: each request in flight holds its worst case (`worst_case_cost`) until its real cost is
        known. A request that does not fit waits while others are in flight, since they usually cost far less
        than they hold; it is refused only when nothing is in flight and it still does not fit. So spend stays
        under the cap as long as the server counts no more tokens than the bound.
        """
        cfg = self.config
        estimate = self.worst_case_cost(wire) if cfg.max_cost is not None else 0.0
        if cfg.max_cost is not None:
            async with self._changed:
                await self._changed.wait_for(lambda: self._fits(estimate) or self._holders == 0)
        # No await from here to the claim: the checks and the claim are one step for every other task.
        if cfg.max_llm_calls is not None and self.usage.requests >= cfg.max_llm_calls:
            cap = f"stopped before passing --max-llm-calls={cfg.max_llm_calls}"
            raise BudgetExceeded(cap + GO_ON, cap=cap)
        if cfg.max_cost is not None and not self._fits(estimate):
            cap = (
                f"stopped before passing --max-cost={cfg.max_cost} USD (spent {self.usage.cost:.4f}; the next call "
                f"could cost up to {estimate:.4f})"
            )
            raise BudgetExceeded(cap + GO_ON, cap=cap)
        self.usage.requests += 1
        self._reserved += estimate
        self._holders += 1
        return estimate

    def _fits(self, estimate: float) -> bool:
        return self.usage.cost + self._reserved + estimate <= self.config.max_cost

    async def _release(self, estimate: float) -> None:
        self._reserved -= estimate
        self._holders -= 1
        if self.config.max_cost is not None:
            async with self._changed:
                self._changed.notify_all()
