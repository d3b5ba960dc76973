"""Sampling fields passed through to the server as they are (`repeat_penalty`, `top_k`, `dry_multiplier`, ...).

A task file's other `[generation]` keys and `--llm-param KEY=VALUE` send fields the OpenAI API does not name;
llama.cpp, vLLM and others read them from the request body. This module imports no SDK, so a task can check its
file without loading the client.
"""

from __future__ import annotations

import json
from typing import Any

from dsp.errors import DSPError

# Request fields the client sets itself: a sampling field passed through (a task's [generation], --llm-param)
# may not name one, or it would silently fight the setting that the command chose.
OWN_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "stream",
        "stream_options",
        "n",
        "sample_index",
        "extra_body",
        "extra_headers",
    }
)


def check_sampling_fields(fields: dict[str, Any], where: str) -> dict[str, Any]:
    """Extra sampling fields (`repeat_penalty`, `top_k`, `dry_multiplier`, ...) sent as they are in the request
    body: JSON values, none of the fields the client sets itself. Returns them; raises DSPError naming `where`."""
    for key, value in fields.items():
        if key in OWN_FIELDS:
            raise DSPError(
                f"{where}: '{key}' is set by dsp itself (the task's generation settings or the command); "
                "it cannot be passed through as a sampling field"
            )
        if not _is_json(value):
            raise DSPError(
                f"{where}: '{key}' must be a JSON value (number, string, true/false, list or table), "
                f"not {type(value).__name__}"
            )
    return dict(fields)


def _is_json(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)):
        return not (isinstance(value, float) and value != value)  # NaN is not JSON
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def parse_llm_params(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--llm-param KEY=VALUE` flags as a dict: VALUE is JSON (`1.1`, `true`, `["a","b"]`), else a plain string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DSPError(f"--llm-param '{pair}': expected KEY=VALUE, for example repeat_penalty=1.1")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return check_sampling_fields(out, "--llm-param")


def refused_field_note(status: int | None, detail: str, extra: dict[str, Any] | None) -> str:
    """When a 400 names one of the passed-through sampling fields, say where that field came from."""
    named = [k for k in (extra or {}) if k in detail] if status == 400 else []
    if not named:
        return ""
    return f" (the server refuses the sampling field '{named[0]}': drop it from --llm-param or the task's [generation])"
