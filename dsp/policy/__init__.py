"""Hint policies: anything with generate(inputs) -> hints, save and load."""

from dsp.policy.base import HintPolicy, load_policy
from dsp.policy.seq2seq import Seq2SeqPolicy
from dsp.policy.tfidf import TfidfPolicy

__all__ = ["HintPolicy", "Seq2SeqPolicy", "TfidfPolicy", "load_policy"]
