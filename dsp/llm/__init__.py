"""The LLM side: a cached, rate-limited, retrying async client for OpenAI-compatible servers.

The request and result types (`dsp.llm.types`) and the cache import no SDK; the client, which loads the openai
SDK, is the one name here that loads on first use, so importing a light module of this package
(`dsp.llm.sampling`, which a task file's check needs) does not load it.
"""

from dsp.llm.cache import LLMCache, cache_key
from dsp.llm.types import LLMConfig, LLMRequest, LLMResult, Usage

__all__ = ["AsyncLLMClient", "LLMCache", "LLMConfig", "LLMRequest", "LLMResult", "Usage", "cache_key"]


def __getattr__(name: str):
    if name == "AsyncLLMClient":
        from dsp.llm.client import AsyncLLMClient

        return AsyncLLMClient
    raise AttributeError(f"module 'dsp.llm' has no attribute '{name}'")
