"""The arithmetic of PPO and of the critic-free group baselines, as pure functions on tensors.

Shapes: N rollouts (input-major: the K samples of one input are adjacent), T action steps
(hint tokens for a seq2seq policy, picks for an extractive one), `mask` (N, T) True on real
steps. Names follow the PPO papers and cleanrl: `logratio`, `pg_loss`, `v_loss`, `approx_kl`,
`clipfrac`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def _moments(
    x: torch.Tensor, mask: torch.Tensor, sum_over_processes
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, E[x^2] - mean^2, count) of the masked entries of every process's x: one all-reduce of 3 sums."""
    stats = torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum()]).double()  # (3,)
    total, squares, n = sum_over_processes(stats)
    mean = total / n.clamp(min=1)
    return mean, (squares / n.clamp(min=1) - mean * mean).clamp(min=0), n


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, sum_over_processes=None) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries; masked-out entries become 0.

    `sum_over_processes` (a tensor -> its sum over the processes of a data-parallel job): the statistics
    are those of the whole batch, as one process with every rollout would compute them."""
    if sum_over_processes is None:
        mean = masked_mean(x, mask)
        var = masked_mean((x - mean) ** 2, mask)
    else:
        mean, var, _ = _moments(x, mask, sum_over_processes)
        mean, var = mean.to(x.dtype), var.to(x.dtype)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def standardize(rewards: torch.Tensor, sum_over_processes=None) -> torch.Tensor:
    """(r - mean) / std over the rewards that are there (N,); NaN stays NaN. `sum_over_processes`: as in `whiten`."""
    ok = ~torch.isnan(rewards)
    if sum_over_processes is not None:
        mean, var, n = _moments(torch.nan_to_num(rewards), ok.to(rewards.dtype), sum_over_processes)
        if n < 2:
            return rewards - mean.to(rewards.dtype)
        std = torch.sqrt(var * n / (n - 1))  # unbiased, as Tensor.std
        return (rewards - mean.to(rewards.dtype)) / (std.to(rewards.dtype) + 1e-8)
    if ok.sum() < 2:
        return rewards - torch.nan_to_num(rewards).sum() / ok.sum().clamp(min=1)
    mean, std = rewards[ok].mean(), rewards[ok].std()
    return (rewards - mean) / (std + 1e-8)


def group_advantages(rewards: torch.Tensor, group: int, kind: str) -> torch.Tensor:
    """Per-rollout advantage from its group of `group` samples of the same input, (N,) -> (N,).

    grpo: (r - group mean) / (group std + eps); rloo: r - mean of the other samples;
    best: 1 for the samples with the group's top score, else 0 (rejection sampling: supervised
    learning on each group's winners, no push away from the losers; on a 0/1 reward the winners are
    the right answers), and 0 for all when every sample scored the same (the hints made no difference).
    A missing reward (NaN) gets advantage 0 and is left out of its group's statistics.
    """
    r = rewards.view(-1, group)  # (B, K)
    ok = ~torch.isnan(r)
    filled = torch.where(ok, r, torch.zeros_like(r))
    count = ok.sum(1, keepdim=True)  # (B, 1)
    if kind == "grpo":
        mean = filled.sum(1, keepdim=True) / count.clamp(min=1)
        var = (torch.where(ok, r - mean, torch.zeros_like(r)) ** 2).sum(1, keepdim=True) / (count - 1).clamp(min=1)
        adv = (r - mean) / (var.sqrt() + 1e-4)
    elif kind == "rloo":
        others = (count - 1).clamp(min=1)
        adv = (r - (filled.sum(1, keepdim=True) - filled) / others) * (count > 1)
    elif kind == "best":
        top = torch.where(ok, r, torch.full_like(r, -math.inf)).max(1, keepdim=True).values  # (B, 1)
        bottom = torch.where(ok, r, torch.full_like(r, math.inf)).min(1, keepdim=True).values  # (B, 1)
        adv = ((r == top) & (top > bottom)).float()
    else:
        raise ValueError(f"unknown group baseline '{kind}'")
    return torch.where(ok, adv, torch.zeros_like(adv)).reshape(-1)


def baseline_advantages(rewards: torch.Tensor, baseline: torch.Tensor, sum_over_processes=None) -> torch.Tensor:
    """ReMax: each rollout's reward minus its input's greedy hint's reward, (N,), (N,) -> (N,).

    Scaled by the root mean square of the differences over the batch (not centred, so the sign still says
    better or worse than the greedy hint, and the step size is the group baselines' whatever the reward's
    units). A missing reward or a missing greedy reward gives advantage 0. `sum_over_processes`: as in `whiten`.
    """
    ok = ~(torch.isnan(rewards) | torch.isnan(baseline))
    diff = torch.where(ok, rewards - baseline, torch.zeros_like(rewards))
    if sum_over_processes is None:
        square = (diff * diff).sum() / ok.sum().clamp(min=1)
    else:
        mean, var, _ = _moments(diff, ok.to(diff.dtype), sum_over_processes)
        square = (var + mean * mean).to(diff.dtype)
    return diff / (square.sqrt() + 1e-8)


def per_step_rewards(score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """PPO's shaped rewards (N, T): -kl_coef * KL at every step, plus the score at the last real step.

    A missing score (NaN) adds nothing; its rollout's advantages are zeroed by the caller.
    """
    rewards = -kl_coef * kl * mask
    real = mask.bool()
    last = (real.long().cumsum(1) == real.sum(1, keepdim=True)) & real  # (N, T) True at the last real step
    return rewards + last * torch.nan_to_num(score, nan=0.0).unsqueeze(1)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each rollout's steps; returns (advantages, returns), (N, T)."""
    n, t = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(n, device=rewards.device)
    for i in reversed(range(t)):
        next_value = values[:, i + 1] * mask[:, i + 1] if i + 1 < t else torch.zeros(n, device=rewards.device)
        delta = rewards[:, i] + gamma * next_value - values[:, i]
        last = (delta + gamma * lam * last) * mask[:, i]
        adv[:, i] = last
    return adv, (adv + values) * mask


def pg_loss_terms(
    logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> dict[str, torch.Tensor]:
    """The clipped surrogate and its diagnostics, averaged over real steps."""
    logratio = logprob - old_logprob
    ratio = logratio.exp()
    pg_losses = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip))
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - logratio, mask)  # the k3 estimator, always >= 0
        clipfrac = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    return {
        "pg_loss": masked_mean(pg_losses, mask),
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
        "ratio": masked_mean(ratio.detach(), mask),
    }


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """Half squared error to the returns; with `clip`, the larger of clipped and unclipped (PPO2)."""
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * masked_mean(unclipped, mask)
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    return 0.5 * masked_mean(torch.max(unclipped, clipped), mask)


def kl_k3(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """Per-step KL(policy || reference) estimate exp(d) - d - 1 with d = ref - policy: unbiased and >= 0."""
    d = ref_logprob - logprob
    return d.exp() - d - 1


@dataclass
class FixedKL:
    """A constant KL coefficient."""

    value: float

    def update(self, kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, d: dict) -> None:
        self.value = d["value"]


@dataclass
class AdaptiveKL:
    """Ziegler et al. (2019): move the coefficient so the observed KL tracks `target`."""

    value: float
    target: float
    horizon: int = 10_000

    def update(self, kl: float, n_steps: int) -> None:
        if math.isnan(kl):
            return
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.value *= 1 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, d: dict) -> None:
        self.value = d["value"]
