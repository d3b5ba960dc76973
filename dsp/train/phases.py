"""The phases of one RL iteration, each a function: rollout, score, advantages, update.

rollout samples K hints per input and records the log-probabilities under the sampling policy
and the frozen reference (and values, for PPO); score asks the reward (LLM calls), and
rollout_and_score runs the two with the calls overlapping the log-probability work; advantages
turn rewards into per-step advantages and update runs the clipped-surrogate epochs, each with
the algorithm's own part (`dsp.train.algos`). The loop that
strings them together, with checkpoints and logs, is `dsp.train.rl.run_rl`.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Callable

import torch

from dsp.data import Example
from dsp.train import accel, ppo
from dsp.train.algos import ALGOS
from dsp.train.reward import Reward
from dsp.train.rollout import Rollout, Samples

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dsp.policy.base import TrainablePolicy
    from dsp.train.configs import RLConfig


# -- the phases ------------------------------------------------------------------------------
def reset_prefixes(
    examples: list[Example], k: int, prob: float, pseudo_label: Callable[[Example], str] | None
) -> list[str | None] | None:
    """DR-PO's dataset reset: with probability `prob` a rollout starts from a random-length
    prefix (at least one word, never all) of its input's pseudo-label hint."""
    if not prob or pseudo_label is None:
        return None
    out: list[str | None] = []
    for e in examples:
        words = pseudo_label(e).split()
        for _ in range(k):
            if len(words) > 1 and random.random() < prob:
                out.append(" ".join(words[: random.randint(1, len(words) - 1)]))
            else:
                out.append(None)
    return out


@torch.no_grad()
def sample(
    policy: TrainablePolicy,
    examples: list[Example],
    k: int,
    reset_hints: list[str | None] | None = None,
    acc: Accelerator | None = None,
) -> Samples:
    with accel.autocast(acc):
        actions, valid, generated, hints = policy.sample_actions([e.input for e in examples], k, reset_hints)
    return Samples([e for e in examples for _ in range(k)], hints, actions, valid, generated)


@torch.no_grad()
def logprobs(
    policy: TrainablePolicy,
    reference: TrainablePolicy,
    value_head: torch.nn.Module | None,
    s: Samples,
    acc: Accelerator | None = None,
) -> Rollout:
    """The sampling policy's and the reference's log-probabilities of the samples (and values, PPO)."""
    row_inputs = [e.input for e in s.examples]
    with accel.autocast(acc):
        logprob, _, state = policy.action_logprobs(row_inputs, s.actions, s.valid)
        ref_logprob, _, _ = reference.action_logprobs(row_inputs, s.actions, s.valid)
        values = value_head(state).squeeze(-1) if value_head is not None else None
    logprob, ref_logprob = logprob.float(), ref_logprob.float()
    values = values.float() if values is not None else None
    mask = s.generated.to(logprob.device)
    return Rollout(s.examples, s.hints, s.actions, s.valid, mask, logprob * mask, ref_logprob * mask, values)


def rollout(
    policy: TrainablePolicy,
    reference: TrainablePolicy,
    value_head: torch.nn.Module | None,
    examples: list[Example],
    k: int,
    reset_hints: list[str | None] | None = None,
) -> Rollout:
    return logprobs(policy, reference, value_head, sample(policy, examples, k, reset_hints))


async def score(reward: Reward, ro: Rollout | Samples) -> torch.Tensor:
    """(N,) rewards; NaN where the LLM failed after its retries."""
    return torch.tensor(await reward(ro.examples, ro.hints), dtype=torch.float32)


async def score_with_greedy(
    policy: TrainablePolicy, reward: Reward, s: Samples, k: int, acc: Accelerator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) the samples' rewards and (N,) the reward of each sample's input's greedy hint (one call per input,
    asked with the samples' calls)."""
    inputs = s.examples[::k]
    with torch.no_grad(), accel.autocast(acc):
        greedy = policy.generate([e.input for e in inputs])
    both = await reward(s.examples + inputs, s.hints + greedy)
    rewards = torch.tensor(both[: len(s.examples)], dtype=torch.float32)
    return rewards, torch.tensor(both[len(s.examples) :], dtype=torch.float32).repeat_interleave(k)


async def rollout_and_score(
    policy: TrainablePolicy,
    reference: TrainablePolicy,
    value_head: torch.nn.Module | None,
    examples: list[Example],
    k: int,
    reset_hints: list[str | None] | None,
    reward: Reward,
    overlap: bool = True,
    mine: list[int] | None = None,
    acc: Accelerator | None = None,
    greedy: bool = False,
) -> tuple[Rollout, torch.Tensor, dict[str, float]]:
    """rollout, then score; with `overlap` the LLM calls start as soon as the hints exist and run
    while the policy and the reference take their log-probabilities (in a worker thread: torch
    releases the GIL, the event loop keeps the calls moving). Returns the seconds spent sampling,
    taking log-probabilities, and waiting on the LLM after the policy work was done.

    `mine`: the positions in `examples` this process rolls out (scores, takes log-probabilities
    of, trains on); None: all. Every process samples the hints of the whole batch: sampling is
    cheap next to a hint's LLM call and its log-probabilities, and it keeps the processes' random
    streams in step, so N processes train on exactly the hints one process would sample, and a
    resumed run on N processes reproduces the uninterrupted one.

    `greedy`: each input's greedy hint is scored with the samples (`score_with_greedy`), its reward put on
    `Rollout.baseline`."""
    t0 = time.perf_counter()
    s = sample(policy, examples, k, reset_hints, acc)
    if mine is not None:
        s = s.of_inputs(mine, k)
    t1 = time.perf_counter()
    baseline = None

    async def scored() -> torch.Tensor:
        nonlocal baseline
        if not greedy:
            return await score(reward, s)
        rewards, baseline = await score_with_greedy(policy, reward, s, k, acc)
        return rewards

    if not overlap:
        ro = logprobs(policy, reference, value_head, s, acc)
        t2 = time.perf_counter()
        rewards = await scored()
    else:
        calls = asyncio.create_task(scored())
        try:
            ro = await asyncio.to_thread(logprobs, policy, reference, value_head, s, acc)
        except BaseException:
            calls.cancel()
            raise
        t2 = time.perf_counter()
        rewards = await calls
    t3 = time.perf_counter()
    ro.baseline = baseline
    return ro, rewards, {"time/sample": t1 - t0, "time/logprobs": t2 - t1, "time/llm_wait": t3 - t2}


def advantages(
    cfg: RLConfig, ro: Rollout, rewards: torch.Tensor, kl_coef: float, acc: Accelerator | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-step advantages (N, T) and, with a value head, returns (N, T): the algorithm's own rule; with several
    processes its batch statistics (PPO's whitening) are over every process's rollouts."""
    share = (lambda t: accel.sum_tensor(acc, t)) if acc is not None and acc.num_processes > 1 else None
    return ALGOS[cfg.algo].advantages(cfg, ro, rewards, kl_coef, share)


def shuffled_rows(n: int, k: int, acc: Accelerator | None = None) -> torch.Tensor:
    """(n,) this process's rollout rows in a random order, for the update's minibatches.

    Every process draws the permutation one process would draw over the whole batch's rows and keeps
    its own rows in that order (input i of the batch is process i % world's, its k rows in place),
    so the random streams stay in step and one process's order is exactly torch.randperm(n)."""
    world, rank = (acc.num_processes, acc.process_index) if acc is not None else (1, 0)
    perm = torch.randperm(n * world)  # (n * world,) over the whole batch's rows
    if world == 1:
        return perm
    inputs, sample_ = perm // k, perm % k
    keep = inputs % world == rank
    return (inputs[keep] // world) * k + sample_[keep]


def update(
    cfg: RLConfig,
    policy: TrainablePolicy,
    value_head: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer,
    ro: Rollout,
    adv: torch.Tensor,
    returns: torch.Tensor | None,
    kl_coef: float,
    params: list[torch.nn.Parameter],
    acc: Accelerator | None = None,
) -> dict[str, float]:
    """Epochs of shuffled minibatches; stops early when approx_kl passes 1.5 x target_kl.

    With several processes each step's gradient is the mean over them (`accel.average_gradients`),
    so a step on minibatches of B rows per process is a step on B x world rows."""
    stats: dict[str, list[float]] = {}
    stop = False
    for _ in range(cfg.update_epochs):
        for idx in shuffled_rows(len(ro.examples), cfg.samples_per_input, acc).split(cfg.minibatch_size):
            loss, terms = minibatch_loss(cfg, policy, value_head, ro, idx, adv, returns, kl_coef, acc)
            optimizer.zero_grad(set_to_none=True)
            if acc is not None:
                acc.backward(loss)  # scales the loss under fp16
            else:
                loss.backward()
            accel.average_gradients(acc, params)  # no-op in one process
            terms["grad_norm"] = (
                acc.clip_grad_norm_(params, cfg.grad_clip)
                if acc is not None
                else torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            )
            optimizer.step()
            for k, v in terms.items():
                stats.setdefault(k, []).append(float(v.detach()) if torch.is_tensor(v) else float(v))
            if cfg.target_kl is not None and accel.mean(acc, float(terms["approx_kl"])) > 1.5 * cfg.target_kl:
                stop = True
                break
        if stop:
            break
    out = {f"losses/{k}": sum(v) / len(v) for k, v in stats.items() if k != "entropy"}
    out["objective/entropy"] = sum(stats["entropy"]) / len(stats["entropy"])
    out["losses/early_stop"] = float(stop)
    return accel.mean_of(acc, out)  # each process's losses are over its own rows: log their mean


def minibatch_loss(
    cfg: RLConfig,
    policy: TrainablePolicy,
    value_head: torch.nn.Module | None,
    ro: Rollout,
    idx: torch.Tensor,
    adv: torch.Tensor,
    returns: torch.Tensor | None,
    kl_coef: float,
    acc: Accelerator | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(the loss of rows `idx`: the clipped surrogate, the algorithm's own term, the entropy bonus; its named
    terms for the log, the entropy among them)."""
    mask = ro.mask[idx].float()  # (B, T)
    with accel.autocast(acc):
        logprob, entropy, state = policy.action_logprobs(
            [ro.examples[i].input for i in idx.tolist()], ro.actions[idx], ro.valid[idx]
        )
        terms = ppo.pg_loss_terms(logprob.float(), ro.logprob[idx], adv[idx], mask, cfg.clip)
        extra, parts = ALGOS[cfg.algo].extra_loss(
            cfg,
            state=state,
            logprob=logprob.float(),
            ro=ro,
            idx=idx,
            returns=returns,
            mask=mask,
            kl_coef=kl_coef,
            value_head=value_head,
        )
    terms.update(parts)
    loss = terms["pg_loss"] - cfg.ent_coef * ppo.masked_mean(entropy.float(), mask) + extra
    terms["entropy"] = ppo.masked_mean(entropy.detach().float(), mask)
    return loss, terms
