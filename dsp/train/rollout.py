"""What one RL iteration samples and measures: `Samples` (hints, before their log-probabilities) and `Rollout`
(with them, what the update and the algorithms read)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dsp.data import Example


@dataclass
class Rollout:
    """One iteration's samples, N = inputs x samples_per_input, T = action steps."""

    examples: list[Example]  # (N,) the example behind each rollout
    hints: list[str]  # (N,)
    actions: torch.Tensor  # (N, T)
    valid: torch.Tensor  # (N, T) bool: real steps (a reset prefix included)
    mask: torch.Tensor  # (N, T) bool: steps the policy generated; the only ones in the loss and KL
    logprob: torch.Tensor  # (N, T) under the policy that sampled
    ref_logprob: torch.Tensor  # (N, T) under the frozen reference
    values: torch.Tensor | None  # (N, T) ppo only
    baseline: torch.Tensor | None = None  # (N,) the reward of each row's input's greedy hint (remax only)


@dataclass
class Samples:
    """Sampled hints before their log-probabilities are taken (what the LLM needs to start)."""

    examples: list[Example]  # (N,) the example behind each sample, as in Rollout
    hints: list[str]  # (N,)
    actions: torch.Tensor  # (N, T)
    valid: torch.Tensor  # (N, T)
    generated: torch.Tensor  # (N, T)

    def of_inputs(self, inputs: list[int], k: int) -> Samples:
        """The rows of the given inputs (rows are input-major, k per input)."""
        rows = [i * k + j for i in inputs for j in range(k)]
        idx = torch.tensor(rows, dtype=torch.long)  # (n,)
        return Samples(
            [self.examples[r] for r in rows],
            [self.hints[r] for r in rows],
            self.actions[idx.to(self.actions.device)],
            self.valid[idx.to(self.valid.device)],
            self.generated[idx.to(self.generated.device)],
        )
