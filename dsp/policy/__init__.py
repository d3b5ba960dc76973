"""Hint policies: anything with generate(inputs) -> hints, save and load.

The torch-backed policies load on first use (PEP 562), so commands that need no policy, such as
`dsp eval --conditions none,oracle`, start without importing torch and transformers.
"""

from dsp.policy.base import HintPolicy
from dsp.policy.loading import check_policy_source, load_policy
from dsp.policy.tfidf import TfidfPolicy

__all__ = ["ExtractivePolicy", "HintPolicy", "Seq2SeqPolicy", "TfidfPolicy", "check_policy_source", "load_policy"]


def __getattr__(name: str):
    if name == "Seq2SeqPolicy":
        from dsp.policy.seq2seq import Seq2SeqPolicy

        return Seq2SeqPolicy
    if name == "ExtractivePolicy":
        from dsp.policy.extractive import ExtractivePolicy

        return ExtractivePolicy
    raise AttributeError(f"module 'dsp.policy' has no attribute '{name}'")
