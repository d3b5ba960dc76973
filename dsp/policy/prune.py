"""Shrink an extractive policy's vocabulary to the tokens its inputs use.

In a small encoder the word-embedding matrix is most of the parameters (all-MiniLM-L6-v2: 11.7M of
22.7M, 30,522 WordPiece tokens x 384), and a policy that serves one kind of text uses a fraction of
the tokens. Pruning keeps the embedding rows of every token the given texts produce, every special
token, and every single-character piece (bare and `##`-continued), so that any word still tokenizes
without [UNK]. The texts tokenize to exactly the same pieces as before, so on them the pruned
encoder computes exactly what the original did; a word the texts never had may split into shorter
pieces.
"""

from __future__ import annotations

import json
from typing import Sequence

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from dsp.errors import DSPError


def kept_token_ids(tokenizer, texts: Sequence[str], batch_size: int = 256) -> list[int]:
    """Sorted ids of the tokens to keep (see the module doc)."""
    blob = json.loads(tokenizer.backend_tokenizer.to_str())
    model = blob["model"]
    if model.get("type") != "WordPiece":
        raise DSPError(f"--prune-vocab supports WordPiece (BERT-style) tokenizers, not {model.get('type')}")
    prefix = model.get("continuing_subword_prefix", "##")
    keep = set(tokenizer.all_special_ids)
    keep.update(
        i for t, i in model["vocab"].items() if len(t) == 1 or (t.startswith(prefix) and len(t) == len(prefix) + 1)
    )
    for start in range(0, len(texts), batch_size):
        for ids in tokenizer(list(texts[start : start + batch_size]), add_special_tokens=False, verbose=False)[
            "input_ids"
        ]:
            keep.update(ids)
    return sorted(keep)


def _pruned_tokenizer(tokenizer, kept: list[int]) -> PreTrainedTokenizerFast:
    remap = {old: new for new, old in enumerate(kept)}
    blob = json.loads(tokenizer.backend_tokenizer.to_str())
    by_id = {i: t for t, i in blob["model"]["vocab"].items()}
    blob["model"]["vocab"] = {by_id[old]: new for new, old in enumerate(kept)}
    for added in blob.get("added_tokens") or []:
        added["id"] = remap[added["id"]]
    post = blob.get("post_processor") or {}
    for processor in [post, *post.get("processors", [])]:  # a template, or a sequence of them
        for special in (processor.get("special_tokens") or {}).values():
            special["ids"] = [remap[i] for i in special["ids"]]
        for key in ("cls", "sep"):  # BertProcessing spells them [token, id]
            if isinstance(processor.get(key), list):
                processor[key][1] = remap[processor[key][1]]
    specials = {
        k: getattr(tokenizer, k)
        for k in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
        if getattr(tokenizer, k, None) is not None
    }
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(blob)), model_max_length=tokenizer.model_max_length, **specials
    )


def prune_vocab(policy, texts: Sequence[str]) -> tuple[int, int]:
    """Prune `policy` (extractive) in place to the tokens of `texts`; returns (tokens before, after)."""
    if policy.kind != "extractive":
        raise DSPError("--prune-vocab applies to extractive students")
    kept = kept_token_ids(policy.tokenizer, texts)
    before = policy.encoder.get_input_embeddings().num_embeddings
    old = policy.encoder.get_input_embeddings()
    remap = {o: n for n, o in enumerate(kept)}
    pad = remap.get(old.padding_idx) if old.padding_idx is not None else None
    new = torch.nn.Embedding(len(kept), old.embedding_dim, padding_idx=pad, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[torch.tensor(kept, device=old.weight.device)])  # (V', H)
    policy.encoder.set_input_embeddings(new)
    policy.encoder.config.vocab_size = len(kept)
    if policy.encoder.config.pad_token_id is not None:
        policy.encoder.config.pad_token_id = remap[policy.encoder.config.pad_token_id]
    policy.tokenizer = _pruned_tokenizer(policy.tokenizer, kept)
    return before, len(kept)
