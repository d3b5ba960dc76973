"""Load a hint policy by name or path: the one place that knows every policy type's loader."""

from __future__ import annotations

from pathlib import Path

from dsp.errors import DSPError
from dsp.policy.base import HintPolicy, looks_like_hub_id, no_policy_at
from dsp.policy.folder import MARKER, policy_folder, read_marker


def check_policy_source(name_or_path: str) -> Path | None:
    """The policy folder to load (None for a hub model name), or raise, with what to do, when `name_or_path`
    is neither a sound policy folder nor something the hub could serve. Cheap (no model is read): commands
    call it before the LLM is started."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return policy_folder(path)
    if not looks_like_hub_id(name_or_path):
        raise no_policy_at(name_or_path, "no such folder")
    return None


def load_policy(name_or_path: str, *, device: str = "cpu") -> HintPolicy:
    """A saved policy folder, a `dsp sft` run folder (its `policy/`), or a Hugging Face model name."""
    from safetensors import SafetensorError

    path = check_policy_source(name_or_path)
    try:
        return _load(path, name_or_path, device)
    except (OSError, SafetensorError) as e:  # what the checks could not see (a file unreadable mid-way)
        raise DSPError(f"{path or name_or_path}: could not load the policy ({str(e).splitlines()[0]})") from None


def _load(path: Path | None, name_or_path: str, device: str) -> HintPolicy:
    meta = read_marker(path) if path is not None and (path / MARKER).exists() else {"kind": "seq2seq"}
    kind = meta.pop("kind", None)
    if kind == "tfidf":
        from dsp.policy.tfidf import TfidfPolicy

        return TfidfPolicy.load(path)
    if kind == "extractive":
        from dsp.policy.extractive import ExtractivePolicy

        return ExtractivePolicy.load(path, device=device, **meta)
    if kind == "seq2seq":  # also a hub name, or a Hugging Face seq2seq model's folder (no marker)
        from dsp.policy.seq2seq import Seq2SeqPolicy

        return Seq2SeqPolicy.from_pretrained(str(path or name_or_path), device=device, **meta)
    raise DSPError(f"{path / MARKER}: unknown policy kind '{kind}'")
