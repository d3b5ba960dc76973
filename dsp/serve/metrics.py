"""/metrics in Prometheus' text format, written by hand: a few counters and histograms need no library
(and no process-wide registry). Only counts and timings: never a key, a token or request text."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

from dsp.llm.types import Usage
from dsp.serve.batcher import BatchStats

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float, times: int = 1) -> None:
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += times
        self.total += value * times
        self.n += times

    def lines(self, name: str, help: str) -> list[str]:
        out = [f"# HELP {name} {help}", f"# TYPE {name} histogram"]
        running = 0
        for bound, c in zip(self.bounds, self.counts):
            running += c
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out += [f'{name}_bucket{{le="+Inf"}} {self.n}', f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return out


@dataclass
class ServerMetrics:
    requests: Counter = field(default_factory=Counter)  # (route, HTTP status) -> count
    hint_seconds: Histogram = field(default_factory=lambda: Histogram(SECONDS))
    upstream_seconds: Histogram = field(default_factory=lambda: Histogram(SECONDS))

    def render(self, usage: Usage, batches: BatchStats) -> str:
        lines = [
            "# HELP dsp_requests_total HTTP requests answered, by route and status.",
            "# TYPE dsp_requests_total counter",
        ]
        lines += [f'dsp_requests_total{{route="{r}",status="{s}"}} {n}' for (r, s), n in sorted(self.requests.items())]
        errors = sum(n for (_, s), n in self.requests.items() if s >= 400)
        lines += [
            "# HELP dsp_errors_total Requests answered with an HTTP error status.",
            "# TYPE dsp_errors_total counter",
            f"dsp_errors_total {errors}",
        ]
        lines += self.hint_seconds.lines(
            "dsp_hint_seconds", "Time from a request asking for its hint to getting it (batch wait + forward pass)."
        )
        lines += self.upstream_seconds.lines(
            "dsp_upstream_seconds", "Time of the call through the LLM client (cache, retries included)."
        )
        sizes = Histogram(SIZES)
        for size, times in batches.sizes.items():
            sizes.observe(size, times)
        lines += sizes.lines("dsp_hint_batch_size", "Inputs per policy forward pass.")
        counters = [
            ("dsp_policy_forward_calls_total", "Policy forward passes.", batches.forward_calls),
            ("dsp_llm_requests_total", "HTTP requests sent to the upstream LLM (retries count).", usage.requests),
            (
                "dsp_llm_cache_hits_total",
                "Upstream answers served from the cache or a request already in flight.",
                usage.cache_hits + usage.dedup_hits,
            ),
            ("dsp_llm_retries_total", "Upstream calls retried.", usage.retries),
            ("dsp_llm_failures_total", "Upstream calls that failed for good.", usage.failures),
            ("dsp_prompt_tokens_total", "Prompt tokens the upstream reported.", usage.prompt_tokens),
            ("dsp_completion_tokens_total", "Completion tokens the upstream reported.", usage.completion_tokens),
        ]
        for name, help, value in counters:
            lines += [f"# HELP {name} {help}", f"# TYPE {name} counter", f"{name} {value}"]
        lines += [
            "# HELP dsp_llm_cost_usd_total Spend by the prices file (0 without one).",
            "# TYPE dsp_llm_cost_usd_total counter",
            f"dsp_llm_cost_usd_total {usage.cost:.6f}",
        ]
        return "\n".join(lines) + "\n"
