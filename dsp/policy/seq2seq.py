"""Any Hugging Face encoder-decoder LM (T5, Flan-T5, BART, ...) as a hint policy."""

from __future__ import annotations

import inspect
import logging
import os
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
        hint_vocab: str = "all",
        separator: str = "; ",
        device: str = "cpu",
    ):
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.max_input_tokens = max_input_tokens
        self.max_hint_tokens = max_hint_tokens
        self.num_beams = num_beams
        if hint_vocab not in ("all", "input"):
            raise DSPError(f"--hint-vocab must be 'all' or 'input', not '{hint_vocab}'")
        self.hint_vocab = hint_vocab
        # The task's phrase separator stays writable under hint_vocab "input" (it need not occur in the
        # input). A whitespace separator needs no token of its own: the phrases' tokens carry the spaces.
        self.separator = separator
        self.separator_ids: list[int] = (
            self.tokenizer(separator.strip(), add_special_tokens=False)["input_ids"] if separator.strip() else []
        )
        self.device = device
        # RL's sampling temperature: it divides the logits both when sampling and when taking
        # log-probabilities, so PPO's ratios stay exact. Greedy decoding ignores it; it is not saved.
        self.temperature = 1.0
        self._warned_truncation = False

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str = "cpu", **kw) -> "Seq2SeqPolicy":
        try:
            # trust_remote_code stays off: a policy folder must not run code it brings along.
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, use_safetensors=None)
        except OSError as e:
            from dsp.policy.base import TRAIN_ONE, no_policy_at

            if not Path(name_or_path).expanduser().exists():
                # not a folder, so it was looked up on the hub; the hub library's own text says little here
                offline = os.environ.get("HF_HUB_OFFLINE") or "connect" in str(e)
                raise no_policy_at(
                    name_or_path,
                    "no such folder, and "
                    + (
                        "the Hugging Face hub is not reachable to look it up as a model name"
                        if offline
                        else "no Hugging Face model by that name"
                    ),
                ) from None
            first = str(e).splitlines()[0]
            raise DSPError(f"could not load policy '{name_or_path}' ({first}); {TRAIN_ONE}") from None
        return cls(model, tokenizer, device=device, **kw)

    def encode_inputs(self, inputs: Sequence[str]) -> dict[str, torch.Tensor]:
        # The untruncated pass is only for the one-time warning; skip it once given.
        if not self._warned_truncation:
            lengths = [len(ids) for ids in self.tokenizer(list(inputs), truncation=False, verbose=False)["input_ids"]]
            if max(lengths, default=0) > self.max_input_tokens:
                log.warning(
                    "some inputs are longer than %d tokens and are cut to fit the policy", self.max_input_tokens
                )
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
            if self.hint_vocab == "input" and not gen_kwargs:  # our own loop applies the vocabulary mask
                actions, valid, _ = self._decode(batch, 1, greedy=True)
                hints += self._texts(actions, valid)
                continue
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

    # -- RL: hint tokens as actions ----------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        c = self.model.config
        return getattr(c, "d_model", None) or c.hidden_size

    def allowed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        """(B, V) True where a hint token may be used: with hint_vocab `input`, the input's own
        tokens, the separator's and end-of-sequence. The same mask is applied when sampling and
        when computing log-probabilities, so the PPO ratio compares like with like."""
        if self.hint_vocab == "all":
            return None
        vocab = self.model.config.vocab_size
        allowed = torch.zeros(input_ids.shape[0], vocab, dtype=torch.bool, device=input_ids.device)
        allowed.scatter_(1, input_ids, True)
        allowed[:, self.separator_ids] = True
        allowed[:, self.tokenizer.eos_token_id] = True
        if self.tokenizer.pad_token_id != self.tokenizer.eos_token_id:
            allowed[:, self.tokenizer.pad_token_id] = False
        return allowed

    def _texts(self, actions: torch.Tensor, valid: torch.Tensor) -> list[str]:
        return [
            h.strip()
            for h in self.tokenizer.batch_decode(
                torch.where(valid, actions, self.tokenizer.pad_token_id), skip_special_tokens=True
            )
        ]

    def _decode(
        self,
        batch: dict[str, torch.Tensor],
        k: int,
        greedy: bool = False,
        prefixes: Sequence[Sequence[int] | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Our own decoding loop: k samples per input (or greedy), optionally forced to start with a prefix.

        Returns actions (N, T), valid (N, T) (up to and including end-of-sequence) and
        generated (N, T) (valid and not forced by a prefix).
        """
        ids = batch["input_ids"].repeat_interleave(k, 0)  # (N, S)
        attn = batch["attention_mask"].repeat_interleave(k, 0)
        allowed = self.allowed_tokens(ids)
        n, eos, pad = ids.shape[0], self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        start = self.model.config.decoder_start_token_id
        encoder_outputs = self.model.get_encoder()(input_ids=ids, attention_mask=attn)
        dec = torch.full((n, 1), start, dtype=torch.long, device=self.device)
        past, done = None, torch.zeros(n, dtype=torch.bool, device=self.device)
        tokens, forced = [], []
        # transformers 5.x renamed past_key_values to cache (the old name warns); take what forward accepts
        cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        for t in range(self.max_hint_tokens):
            out = self.model(
                encoder_outputs=encoder_outputs,
                attention_mask=attn,
                decoder_input_ids=dec[:, -1:],
                use_cache=True,
                **{cache_arg: past},
            )
            past = out.get(cache_arg)
            logits = out.logits[:, -1].float()  # (N, V)
            if allowed is not None:
                logits = logits.masked_fill(~allowed, float("-inf"))
            tok = (
                logits.argmax(-1)
                if greedy
                else torch.multinomial((logits / self.temperature).softmax(-1), 1).squeeze(1)
            )
            is_forced = torch.zeros(n, dtype=torch.bool, device=self.device)
            if prefixes is not None:
                for row, prefix in enumerate(prefixes):
                    if prefix is not None and t < len(prefix):
                        tok[row], is_forced[row] = prefix[t], True
            tok = torch.where(done, torch.full_like(tok, pad), tok)
            tokens.append(tok)
            forced.append(is_forced)
            done = done | (tok == eos)
            dec = torch.cat([dec, tok.unsqueeze(1)], 1)
            if done.all():
                break
        actions = torch.stack(tokens, 1)  # (N, T)
        ended_before = torch.cumsum((actions == eos).long(), 1) - (actions == eos).long()
        valid = ended_before == 0  # up to and including the first end-of-sequence
        generated = valid & ~torch.stack(forced, 1)
        return actions, valid, generated

    @torch.no_grad()
    def sample_actions(
        self, inputs: Sequence[str], num_samples: int, reset_hints: Sequence[str | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        """`num_samples` sampled hints per input (input-major): actions, valid, generated (N, T), texts.

        `reset_hints` (one per rollout row, or None) starts a row from that hint's tokens, which
        the policy then completes; those forced steps are valid but not `generated`.
        """
        batch = self.encode_inputs(inputs)
        prefixes = None
        if reset_hints is not None:
            prefixes = [
                None
                if h is None
                else self.tokenizer(h, add_special_tokens=False)["input_ids"][: self.max_hint_tokens - 1]
                for h in reset_hints
            ]
        actions, valid, generated = self._decode(batch, num_samples, prefixes=prefixes)
        return actions, valid, generated, self._texts(actions, valid)

    def action_logprobs(
        self, inputs: Sequence[str], actions: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token log-probabilities and entropies (N, T) by teacher forcing, and decoder states (N, T, H)."""
        batch = self.encode_inputs(inputs)
        actions = actions.to(self.device)
        start = torch.full(
            (actions.shape[0], 1), self.model.config.decoder_start_token_id, dtype=torch.long, device=self.device
        )
        dec = torch.cat([start, actions[:, :-1]], 1)  # (N, T): the decoder is causal, so padding after EOS is harmless
        out = self.model(**batch, decoder_input_ids=dec, output_hidden_states=True)
        logits = out.logits.float() / self.temperature  # (N, T, V)
        allowed = self.allowed_tokens(batch["input_ids"])
        if allowed is not None:
            logits = logits.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        logp_all = torch.log_softmax(logits, -1)
        safe = torch.where(valid.to(self.device), actions, 0)  # padded steps read token 0, then masked out
        logp = torch.where(valid.to(self.device), logp_all.gather(2, safe.unsqueeze(2)).squeeze(2), 0.0)
        entropy = -(logp_all.exp() * logp_all.masked_fill(torch.isinf(logp_all), 0.0)).sum(-1)
        return logp, entropy, out.decoder_hidden_states[-1]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)  # safetensors
        self.tokenizer.save_pretrained(path)
        write_marker(
            path,
            self.kind,
            max_input_tokens=self.max_input_tokens,
            max_hint_tokens=self.max_hint_tokens,
            hint_vocab=self.hint_vocab,
            separator=self.separator,
        )

    def parameters(self):
        return self.model.parameters()

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": lr}]

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
