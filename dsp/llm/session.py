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
from dsp.llm.client import AsyncLLMClient, LLMConfig

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


def run_with_llm(config: LLMConfig, cache_path: str | Path | None, work: Callable[[AsyncLLMClient], Awaitable[Any]]) -> Any:
    """Run `work(client)` with an open client; starts and stops the embedded LLM if no endpoint is set."""
    with contextlib.ExitStack() as stack:
        backend_gone = None
        if config.base_url is None and config.model is None:
            from dsp.llm.local import MODEL_ALIAS, local_llm_server

            server = stack.enter_context(local_llm_server())
            backend_gone = server.exit_reason
            # The server decodes `slots` requests together (llama-cpp-python's one): more in flight only
            # queue there, but one queued keeps a one-slot server busy between answers.
            config = replace(config, base_url=server.base_url, model=MODEL_ALIAS, cache_namespace=server.cache_namespace,
                             concurrency=min(config.concurrency, max(2, server.slots)))
        else:
            config.check_remote()

        async def main() -> Any:
            client = AsyncLLMClient(config, LLMCache(cache_path or DEFAULT_CACHE), backend_gone=backend_gone)
            try:
                await client.check_reachable()
                return await work(client)
            finally:
                await client.aclose()
                if client.cache is not None:
                    client.cache.close()

        return asyncio.run(main())
