"""The LLM side: a cached, rate-limited, retrying async client for OpenAI-compatible servers.

The names below load on first use, so importing a light module of this package (`dsp.llm.sampling`, which a
task file's check needs) does not load the openai SDK.
"""

from importlib import import_module

_WHERE = {"LLMCache": "cache", "cache_key": "cache", "AsyncLLMClient": "client", "LLMConfig": "client",
          "LLMRequest": "client", "LLMResult": "client", "Usage": "client"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'dsp.llm' has no attribute '{name}'")
    return getattr(import_module(f"dsp.llm.{_WHERE[name]}"), name)
