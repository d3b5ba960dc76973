"""The LLM side's plain data: which server and how hard (`LLMConfig`), one call (`LLMRequest`), its answer
(`LLMResult`) and a run's counts (`Usage`). It imports no SDK, so a task builds its requests, and a command
checks its LLM flags, without loading the openai client.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dsp.errors import DSPError
from dsp.llm.sampling import check_sampling_fields
from dsp.settings import above, at_least, check_settings

OPENAI_URL = "https://api.openai.com/v1"


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
    concurrency: int = at_least(8, 1)
    """Most calls in flight at once; 8 suits a remote API's rate limits, raise it for your own server."""
    max_retries: int = at_least(6, 0, flag="--max-retries")
    """Retries per call on 429, 5xx, timeouts and dropped connections (not on 400/401)."""
    timeout: float = above(120.0, 0, flag="--llm-timeout")
    """Seconds before one HTTP call is abandoned (and retried)."""
    max_llm_calls: int | None = at_least(None, 0)
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
        check_settings(self)
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
    retry_reasons: dict[str, int] = field(default_factory=dict)  # {"HTTP 429": 3, "APITimeoutError (ReadTimeout)": 1}
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        looked_up = self.answers + self.cache_hits + self.dedup_hits
        d["cache_hit_rate"] = (self.cache_hits + self.dedup_hits) / looked_up if looked_up else 0.0
        return d
