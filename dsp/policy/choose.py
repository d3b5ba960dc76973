"""Which policy a command builds when the user does not say: seq2seq online, extractive offline."""

from __future__ import annotations

import logging
import os
import socket
from typing import Literal, Sequence, get_args

from dsp.errors import DSPError
from dsp.settings import check_choice

log = logging.getLogger(__name__)

PolicyType = Literal["auto", "extractive", "seq2seq"]
POLICY_TYPES: tuple[str, ...] = get_args(PolicyType)
ONLINE_DEFAULT = "google/flan-t5-base"  # the paper's policy family
DEFAULT_LR = {"extractive": 5e-5, "seq2seq": 3e-4, "scratch": 5e-4}


def hub_reachable(timeout: float = 2.0) -> bool:
    """True unless HF_HUB_OFFLINE is set or huggingface.co does not answer on port 443."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_policy_type(policy_type: str, policy: str | None) -> tuple[str, str | None]:
    """(policy type, model name or None for the type's default). `auto` picks by the name or the network.

    Offline the extractive policy is the default: it is the only one that learns here (no
    pretrained seq2seq model can be fetched; see BENCHMARKS.md's ladder).
    """
    check_choice("--policy-type", policy_type, PolicyType)
    if policy_type != "auto":
        if policy_type == "extractive" and policy == "scratch":
            raise DSPError("--policy scratch is a seq2seq T5 from a config; use it with --policy-type seq2seq")
        return policy_type, policy
    if policy == "scratch":
        return "seq2seq", policy
    if policy is not None:
        from transformers import AutoConfig

        try:
            is_seq2seq = bool(getattr(AutoConfig.from_pretrained(policy), "is_encoder_decoder", False))
        except (OSError, ValueError) as e:
            raise DSPError(f"could not read the config of --policy '{policy}' ({str(e).splitlines()[0]})") from None
        return ("seq2seq" if is_seq2seq else "extractive"), policy
    if hub_reachable():
        log.info("policy: %s (hub reachable)", ONLINE_DEFAULT)
        return "seq2seq", ONLINE_DEFAULT
    log.info("policy: extractive all-MiniLM-L6-v2 (hub not reachable; the packaged encoder)")
    return "extractive", None


def resolve_device(device: str) -> str:
    """`auto`: the first CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def new_policy(
    policy_type: str,
    policy: str | None,
    *,
    train_texts: Sequence[str] = (),
    scratch_size: str = "tiny",
    max_input_tokens: int | None = None,
    max_hint_tokens: int = 48,
    separator: str = "; ",
    hint_words: int | None = None,
    device: str = "cpu",
):
    """A fresh policy to fine-tune."""
    if policy_type == "extractive":
        from dsp.policy.extractive import ExtractivePolicy

        return ExtractivePolicy.from_encoder(
            policy,
            max_input_tokens=max_input_tokens or 512,
            separator=separator,
            hint_words=hint_words or 12,
            device=device,
        )
    kw = dict(
        max_input_tokens=max_input_tokens or 256, max_hint_tokens=max_hint_tokens, separator=separator, device=device
    )
    if policy == "scratch":
        from dsp.policy.scratch import build_scratch_policy

        return build_scratch_policy(list(train_texts), scratch_size, **kw)
    from dsp.policy.seq2seq import Seq2SeqPolicy

    return Seq2SeqPolicy.from_pretrained(policy or ONLINE_DEFAULT, **kw)
