"""When to retry an LLM call and how long to wait: two pure functions, as the openai SDK shapes it."""

from __future__ import annotations

import email.utils
import importlib
import random
import time

import openai

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # seconds; a server asking for longer is treated as this


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's own transport errors. The SDK turns a dropped connection into APIConnectionError only
    while it sends a request; one that drops while a stream is read reaches us as the library's error."""
    for name in ("httpx2", "httpx"):  # the openai SDK's HTTP client, under either name
        try:
            return (importlib.import_module(name).TransportError,)
        except (ImportError, AttributeError):
            continue
    return ()


TRANSPORT_ERRORS = _transport_errors()


class MalformedResponse(Exception):
    """The server answered 200 but with no usable choice (empty `choices`, no text)."""


def failure_kind(exc: BaseException | None) -> str:
    """A failed call's kind in a few words with no message (so no key or prompt): "HTTP 429", "APITimeoutError
    (ReadTimeout)" (the SDK's error and the transport's under it)."""
    status = getattr(exc, "status_code", None)
    if status:
        return f"HTTP {status}"
    cause = getattr(exc, "__cause__", None)  # the SDK wraps the transport's error: name both
    return f"{type(exc).__name__} ({type(cause).__name__})" if cause is not None else type(exc).__name__


def should_retry(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth another try.

    Client errors (400 bad request, 401 bad key, 404 unknown model) are not: the same request
    would fail the same way, and retrying a 401 only burns time.
    """
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, MalformedResponse, *TRANSPORT_ERRORS)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUSES or exc.status_code >= 500
    if isinstance(exc, openai.APIResponseValidationError):
        return True
    return False


def retry_after_seconds(headers) -> float | None:
    """Seconds a server asked us to wait (`retry-after-ms`, `retry-after` in seconds or as a date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def retry_delay(
    exc: BaseException | None,
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before try number `attempt + 1` (attempt counts from 1).

    A server's Retry-After wins (it knows when its window resets). Otherwise exponential
    backoff, base * 2^(attempt-1) capped at `cap`, with up to 25% jitter taken off so that many
    clients that failed together do not come back together.
    """
    response = getattr(exc, "response", None)
    asked = retry_after_seconds(getattr(response, "headers", None))
    if asked is not None:
        return min(asked, MAX_RETRY_AFTER)
    backoff = min(cap, base * (2 ** max(0, attempt - 1)))
    jitter = 1.0 - 0.25 * (rng or random).random()
    return backoff * jitter
