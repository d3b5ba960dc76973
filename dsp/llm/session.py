"""Open the LLM a command talks to: the configured endpoint, or the embedded one when none is set."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, Awaitable, Callable

from dsp.errors import DSPError
from dsp.llm.cache import LLMCache
from dsp.llm.client import AsyncLLMClient
from dsp.llm.types import LLMConfig

DEFAULT_CACHE = Path.home() / ".cache" / "dsp" / "llm-cache.sqlite"


def load_prices(path: str | Path, model: str | None) -> tuple[float, float]:
    """(USD per 1M prompt tokens, per 1M completion tokens) of `model` from a TOML prices file.

    Format:  [models."gpt-4o-mini"]  input = 0.15  output = 0.60
    """
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DSPError(f"{path}: no such prices file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DSPError(f"{path}: not valid TOML ({e})") from None
    entry = table.get("models", {}).get(model or "")
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), (int, float)) for k in ("input", "output")):
        raise DSPError(f"{path}: no [models.\"{model}\"] entry with numeric 'input' and 'output' prices")
    return float(entry["input"]), float(entry["output"])


def run_with_llm(
    config: LLMConfig, cache_path: str | Path | None, work: Callable[[AsyncLLMClient], Awaitable[Any]]
) -> Any:
    """Run `work(client)` with an open client. With no endpoint set, the client's backend is the embedded LLM,
    whose processes start on the first answer the cache does not hold (none for a fully cached run) and stop
    however we leave."""
    with contextlib.ExitStack() as stack:
        pool = None
        if config.base_url is None and config.model is None:
            from dsp.llm.embedded import embedded_pool
            from dsp.llm.local import MODEL_ALIAS, pool_spec

            spec = pool_spec()  # settings checked and the model file found now; nothing starts yet
            pool = stack.enter_context(embedded_pool(spec))
            # More calls in flight than slots only queue at the servers, but one queued per slot keeps each
            # process busy between answers.
            config = replace(
                config,
                base_url="http://embedded.invalid/v1",
                model=MODEL_ALIAS,
                cache_namespace=spec.cache_namespace,
                concurrency=min(config.concurrency, 2 * spec.capacity),
            )
        else:
            config.check_remote()

        async def main() -> Any:
            cache = LLMCache(cache_path or DEFAULT_CACHE)
            if pool is not None:
                from dsp.llm.embedded import EmbeddedClient

                client: AsyncLLMClient = EmbeddedClient(config, cache, pool)
            else:
                client = AsyncLLMClient(config, cache)
            try:
                await client.check_reachable()
                return await work(client)
            finally:
                await client.aclose()
                if client.cache is not None:
                    client.cache.close()

        return asyncio.run(main())
