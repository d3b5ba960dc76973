"""A small T5 built from a config, with a tokenizer trained on the task's own texts.

This is how the whole pipeline runs where no pretrained checkpoint can be downloaded. Expect
little from it: a T5 from scratch needs far more than a few hundred articles to learn to
pick keywords (see BENCHMARKS.md). With hub access, start from `google/flan-t5-base` instead.
"""

from __future__ import annotations

import json
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from dsp.errors import DSPError
from dsp.policy.seq2seq import Seq2SeqPolicy

SIZES = {
    # name: (d_model, d_ff, layers, heads)
    "tiny": (64, 256, 2, 4),
    "small": (256, 1024, 4, 4),
}
SPECIALS = ["<pad>", "</s>", "<unk>"]  # T5's ids 0, 1, 2


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """A SentencePiece-style Unigram tokenizer (the kind T5 uses), trained on `texts`."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>")
    tok.train_from_iterator(texts, trainer=trainer)
    tok = _canonical_order(tok)
    # T5 ends every sequence with </s>.
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _canonical_order(tok: Tokenizer) -> Tokenizer:
    """Round the scores and sort pieces by (-score, piece) after the specials.

    The trainer sums in hash-map order, which changes from process to process: pieces of equal
    score come in any order, and scores differ in their last bits (1e-15), enough to flip a tie
    between two segmentations. Without this, the same data and seed give different token ids,
    different tokens and different weights.
    """
    blob = json.loads(tok.to_str())
    vocab = [[piece, round(score, 9)] for piece, score in blob["model"]["vocab"]]  # specials first
    blob["model"]["vocab"] = vocab[: len(SPECIALS)] + sorted(vocab[len(SPECIALS) :], key=lambda p: (-p[1], p[0]))
    return Tokenizer.from_str(json.dumps(blob))


def build_scratch_policy(texts: list[str], size: str = "tiny", vocab_size: int = 8000, **policy_kw) -> Seq2SeqPolicy:
    """A randomly initialised T5 of `size` with a tokenizer trained on `texts`."""
    if size not in SIZES:
        raise DSPError(f"--scratch-size must be one of {', '.join(SIZES)}, not '{size}'")
    tokenizer = train_tokenizer(texts, vocab_size)
    d_model, d_ff, layers, heads = SIZES[size]
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_model // heads,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return Seq2SeqPolicy(T5ForConditionalGeneration(config), tokenizer, **policy_kw)
