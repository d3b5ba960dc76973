"""Any Hugging Face encoder-decoder LM (T5, Flan-T5, BART, ...) as a hint policy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from dsp.errors import DSPError
from dsp.policy.base import write_marker

log = logging.getLogger(__name__)


class Seq2SeqPolicy:
    """Input text -> hint text with a seq2seq LM. Inputs past `max_input_tokens` are cut, with a warning."""

    kind = "seq2seq"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_input_tokens: int = 512,
        max_hint_tokens: int = 64,
        num_beams: int = 1,
        device: str = "cpu",
    ):
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.max_input_tokens = max_input_tokens
        self.max_hint_tokens = max_hint_tokens
        self.num_beams = num_beams
        self.device = device
        self._warned_truncation = False

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str = "cpu", **kw) -> "Seq2SeqPolicy":
        try:
            # trust_remote_code stays off: a policy folder must not run code it brings along.
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, use_safetensors=None)
        except OSError as e:
            first = str(e).splitlines()[0]
            raise DSPError(
                f"could not load policy '{name_or_path}' ({first}); offline? train one with "
                "`dsp sft --policy scratch` and pass its run folder"
            ) from None
        return cls(model, tokenizer, device=device, **kw)

    def encode_inputs(self, inputs: Sequence[str]) -> dict[str, torch.Tensor]:
        # The untruncated pass is only for the one-time warning; skip it once given.
        if not self._warned_truncation:
            lengths = [len(ids) for ids in self.tokenizer(list(inputs), truncation=False, verbose=False)["input_ids"]]
            if max(lengths, default=0) > self.max_input_tokens:
                log.warning("some inputs are longer than %d tokens and are cut to fit the policy", self.max_input_tokens)
                self._warned_truncation = True
        batch = self.tokenizer(
            list(inputs), truncation=True, max_length=self.max_input_tokens, padding=True, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def loss(self, inputs: Sequence[str], hints: Sequence[str]) -> torch.Tensor:
        """Mean token cross-entropy of `hints` given `inputs` (teacher forcing)."""
        batch = self.encode_inputs(inputs)
        labels = self.tokenizer(
            text_target=list(hints), truncation=True, max_length=self.max_hint_tokens, padding=True, return_tensors="pt"
        )["input_ids"].to(self.device)  # (B, T)
        labels[labels == self.tokenizer.pad_token_id] = -100  # padding takes no loss
        return self.model(**batch, labels=labels).loss

    @torch.no_grad()
    def generate(self, inputs: Sequence[str], *, batch_size: int = 16, **gen_kwargs) -> list[str]:
        was_training = self.model.training
        self.model.eval()
        hints: list[str] = []
        for start in range(0, len(inputs), batch_size):
            batch = self.encode_inputs(inputs[start : start + batch_size])
            out = self.model.generate(
                **batch,
                max_new_tokens=self.max_hint_tokens,
                num_beams=gen_kwargs.pop("num_beams", self.num_beams),
                do_sample=gen_kwargs.pop("do_sample", False),
                **gen_kwargs,
            )  # (B, T)
            hints += [h.strip() for h in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        self.model.train(was_training)
        return hints

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)  # safetensors
        self.tokenizer.save_pretrained(path)
        write_marker(path, self.kind, max_input_tokens=self.max_input_tokens, max_hint_tokens=self.max_hint_tokens)

    def parameters(self):
        return self.model.parameters()

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
