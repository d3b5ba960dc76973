"""The RL algorithms: only what differs between PPO, GRPO and RLOO, behind one small interface.

The loop (`dsp.train.rl`) and the phases (`dsp.train.phases`) are shared. An algorithm says whether
it learns a value head and how many samples per input it needs, turns an iteration's rewards into
per-step advantages, and adds its own term to the clipped policy-gradient loss. A new algorithm is
one class here, registered in ALGOS; `--algo NAME` then picks it.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch

from dsp.train import ppo
from dsp.train.rollout import Rollout


class AlgoSettings(Protocol):
    """The settings an algorithm reads (`RLConfig`'s: the config imports this module to check its own)."""

    samples_per_input: int
    whiten_rewards: bool
    gamma: float
    lam: float
    vf_coef: float
    vf_clip: float | None


class Algorithm:
    name: ClassVar[str]
    value_head: ClassVar[bool] = False
    """Whether the loop builds a value head on the policy's state (and checkpoints it)."""
    min_group: ClassVar[int] = 1
    """Fewest hints sampled per input the algorithm works with."""
    greedy_baseline: ClassVar[bool] = False
    """Whether each input's greedy hint is scored too (`Rollout.baseline`): one more LLM call per input."""

    def advantages(
        self, cfg: AlgoSettings, ro: Rollout, rewards: torch.Tensor, kl_coef: float, sum_over_processes=None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-step advantages (N, T), and returns (N, T) for a value head; a NaN reward gets zero advantage.
        `sum_over_processes`: for statistics over the whole batch of a data-parallel job (see `ppo.whiten`)."""
        raise NotImplementedError

    def extra_loss(
        self,
        cfg: AlgoSettings,
        *,
        state: torch.Tensor,
        logprob: torch.Tensor,
        ro: Rollout,
        idx: torch.Tensor,
        returns: torch.Tensor | None,
        mask: torch.Tensor,
        kl_coef: float,
        value_head,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the weighted term added to pg_loss, its named parts for the log) for one minibatch."""
        raise NotImplementedError


class PPO(Algorithm):
    """A value head and GAE over KL-shaped per-step rewards (the KL is in the reward, not the loss)."""

    name = "ppo"
    value_head = True

    def advantages(self, cfg, ro, rewards, kl_coef, sum_over_processes=None):
        mask = ro.mask.float()
        rewards = rewards.to(mask.device)
        missing = torch.isnan(rewards).unsqueeze(1)  # (N, 1)
        if cfg.whiten_rewards:
            rewards = ppo.standardize(rewards, sum_over_processes)
        kl = ro.logprob - ro.ref_logprob  # (N, T), the k1 estimate at the sampled actions
        shaped = ppo.per_step_rewards(rewards, kl, mask, kl_coef)
        adv, returns = ppo.gae(shaped, ro.values, mask, cfg.gamma, cfg.lam)
        adv = ppo.whiten(adv, mask * ~missing, sum_over_processes=sum_over_processes)
        return adv * ~missing, returns

    def extra_loss(self, cfg, *, state, logprob, ro, idx, returns, mask, kl_coef, value_head):
        values = value_head(state).squeeze(-1)  # (B, T)
        v_loss = ppo.value_loss(values, ro.values[idx], returns[idx], mask, cfg.vf_clip)
        return cfg.vf_coef * v_loss, {"v_loss": v_loss}


class GroupBaseline(Algorithm):
    """No critic: the other samples of the same input are the baseline; the KL is a loss term (k3)."""

    min_group = 2

    def __init__(self, name: str):
        self.name = name  # grpo: group mean and std; rloo: leave-one-out mean; best: the group's winner only

    def advantages(self, cfg, ro, rewards, kl_coef, sum_over_processes=None):
        # a group is one input's samples, all on one process: nothing to share
        adv = ppo.group_advantages(rewards.to(ro.mask.device), cfg.samples_per_input, self.name)  # (N,)
        return adv.unsqueeze(1) * ro.mask.float(), None

    def extra_loss(self, cfg, *, state, logprob, ro, idx, returns, mask, kl_coef, value_head):
        kl_loss = ppo.masked_mean(ppo.kl_k3(logprob, ro.ref_logprob[idx]), mask)
        return kl_coef * kl_loss, {"kl_loss": kl_loss}


class ReMax(GroupBaseline):
    """ReMax (Li et al. 2023): the baseline is the reward of the input's greedy hint, the one `dsp eval` and
    `dsp hint` write, so a sampled hint is pushed up exactly where it beats what the policy would say now."""

    min_group = 1
    greedy_baseline = True

    def __init__(self):
        super().__init__("remax")

    def advantages(self, cfg, ro, rewards, kl_coef, sum_over_processes=None):
        adv = ppo.baseline_advantages(rewards.to(ro.mask.device), ro.baseline.to(ro.mask.device), sum_over_processes)
        return adv.unsqueeze(1) * ro.mask.float(), None  # (N, T)


ALGOS: dict[str, Algorithm] = {
    a.name: a for a in (PPO(), GroupBaseline("grpo"), GroupBaseline("rloo"), GroupBaseline("best"), ReMax())
}
