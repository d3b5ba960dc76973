"""The LLM side: a cached, rate-limited, retrying async client for OpenAI-compatible servers."""

from dsp.llm.cache import LLMCache, cache_key
from dsp.llm.client import AsyncLLMClient, LLMConfig, LLMRequest, LLMResult, Usage

__all__ = ["AsyncLLMClient", "LLMCache", "LLMConfig", "LLMRequest", "LLMResult", "Usage", "cache_key"]
