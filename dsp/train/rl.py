"""`dsp rl`: improve a hint policy with rewards from the black-box LLM.

One iteration is the named phases of `dsp.train.phases`: rollout (sample K hints per input,
with the old and the reference log-probabilities and, for PPO, values), score (the reward: LLM
calls), advantages (GAE on KL-shaped rewards for PPO; the group baseline for GRPO / RLOO), and
update (epochs of minibatches of the clipped surrogate). This module holds the config and the
loop: data order, checkpoints, logs, dev evaluation, the call cap. The policy, the reward and
the LLM client are passed in; nothing here formats a prompt or calls HTTP itself.

Dropout stays off for the whole run, so the log-probabilities that rollout records are the
ones a fresh forward pass gives (the ratio is exactly 1 before the first update).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from dsp.data import Example, load_examples
from dsp.errors import BudgetExceeded, DSPError, MissingSplit
from dsp.io import RunLock, finite_or_none, write_json_atomic
from dsp.policy.base import TrainablePolicy, load_policy
from dsp.train import accel, ppo
from dsp.train.algos import ALGOS
from dsp.train.configs import RLConfig  # noqa: F401  (re-exported: the trainer's settings)
from dsp.train.phases import Rollout, advantages, reset_prefixes, rollout, rollout_and_score, score, update  # noqa: F401
from dsp.train.logs import RunLog, plot_curves, write_dev_articles, write_run_report
from dsp.train.reward import Reward
from dsp.shots import draw_shots, overlaps
from dsp.train.sft import _batch_order
from dsp.train.state import load_trainer_state, open_run_folder, save_checkpoint, save_final_policy, save_run_config

# How a run stopped at a cap goes on: from its checkpoint, with a cap of the new invocation's own.
RESUME = "; the checkpoint is written: --resume goes on, the cap counting that invocation's calls"


# -- the loop --------------------------------------------------------------------------------
def _dev(cfg: RLConfig) -> list[Example]:
    try:
        return load_examples(cfg.data, split=cfg.dev_split, input_field=cfg.input_field, target_field=cfg.target_field,
                             config_name=cfg.data_config, limit=cfg.dev_limit)
    except MissingSplit:
        return []


SHOWN_DEV = 5
"""Dev articles whose greedy hints each dev evaluation logs (`dev/hints`), for the report to follow."""


async def evaluate_dev(policy, reward: Reward, dev: list[Example]) -> dict[str, Any]:
    """The dev metric of the greedy hints (`val`), and the first SHOWN_DEV articles' hints and scores (`dev/hints`)."""
    hints = policy.generate([e.input for e in dev])
    scores = await reward.metric(dev, hints)
    values = [v for v in scores if not math.isnan(v)]
    shown = [{"id": e.id, "hint": h, "score": None if math.isnan(v) else v}
             for e, h, v in list(zip(dev, hints, scores))[:SHOWN_DEV]]
    return {"val": sum(values) / len(values) if values else math.nan, "dev/hints": shown}


def _dev_metrics(result: dict[str, Any], val_key: str) -> dict[str, Any]:
    return {val_key: result["val"], "dev/hints": result["dev/hints"]}


async def run_rl(cfg: RLConfig, reward: Reward, *, client=None, metric_name: str = "metric",
                 pseudo_label: Callable[[Example], str] | None = None,
                 on_iteration: Callable[[int, Any], None] | None = None,
                 shots: list[Example] | None = None, llm_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train; checkpoints every `save_every` iterations; returns the final metrics.

    `client` (optional) gives usage counts; `pseudo_label` is needed by --reset-prob;
    `on_iteration(iteration, policy)` runs after each iteration is logged and checkpointed;
    `shots`: the reward's few-shot examples, left out of the rollouts (None: `rl_shots(cfg, dev)`);
    `llm_settings` (the LLM's base_url and model) are saved in config.json beside cfg.
    """
    if cfg.reset_prob and pseudo_label is None:
        raise DSPError("--reset-prob needs the task's pseudo-labels")
    acc = accel.make_accelerator(cfg.device, cfg.mixed_precision)
    with RunLock(cfg.output_dir) if acc.is_main_process else contextlib.nullcontext():  # one writer per run folder
        return await _run_rl(cfg, acc, reward, client, metric_name, pseudo_label, on_iteration, shots, llm_settings)


def rl_shots(cfg: RLConfig, dev: list[Example]) -> list[Example]:
    """The reward's few-shot examples: the first of `shots_split` that are not dev examples (one --data file
    serves every split, so they then come from past the dev ones)."""
    return draw_shots(cfg.data, cfg.shots, dev, split=cfg.shots_split, input_field=cfg.input_field,
                      target_field=cfg.target_field, config_name=cfg.data_config)


def _train_inputs(cfg: RLConfig, shots: list[Example]) -> list[Example]:
    train = load_examples(cfg.data, split=cfg.train_split, input_field=cfg.input_field, target_field=cfg.target_field,
                          config_name=cfg.data_config, limit=cfg.limit)
    is_shot = overlaps(shots)
    train = [e for e in train if not is_shot(e)]  # the few-shot examples are in every prompt: not rollout inputs
    if not train:
        raise DSPError(f"{cfg.data}: no training inputs left to roll out")
    return train


def _load_policies(cfg: RLConfig, checkpoint: Path | None, device: str):
    """(the trained policy, the frozen KL reference), with the run's sampling settings on both."""
    policy = load_policy(str(checkpoint / "policy") if checkpoint else cfg.policy, device=device)
    reference = load_policy(cfg.policy, device=device)
    if not isinstance(policy, TrainablePolicy):
        raise DSPError(f"{cfg.policy}: a {policy.kind} policy cannot be trained by RL")
    if cfg.hint_vocab is not None:
        if policy.kind != "seq2seq":
            raise DSPError(f"--hint-vocab applies to seq2seq policies; a {policy.kind} policy picks input words already")
        policy.hint_vocab = reference.hint_vocab = cfg.hint_vocab  # one mask for sampling and for log-probs
    policy.temperature = reference.temperature = cfg.policy_temperature  # the KL compares like with like
    if cfg.hint_words is not None:
        if policy.kind != "extractive":
            raise DSPError(f"--hint-words applies to extractive policies; a {policy.kind} policy decides its hint's length")
        policy.hint_words = reference.hint_words = cfg.hint_words
    for p in reference.parameters():
        p.requires_grad_(False)
    policy.train(False)  # no dropout: rollout log-probs equal the update's fresh ones
    reference.train(False)
    return policy, reference


@dataclass
class _Optim:
    """What the update steps and the checkpoint carries besides the policy."""

    value_head: torch.nn.Module | None
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    kl_ctl: Any

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"value_head": self.value_head} if self.value_head is not None else {}


def _build_optim(cfg: RLConfig, policy) -> _Optim:
    value_head = torch.nn.Linear(policy.hidden_size, 1).to(policy.device) if ALGOS[cfg.algo].value_head else None
    params = list(policy.parameters()) + (list(value_head.parameters()) if value_head is not None else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    decay = cfg.lr_schedule == "linear"
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: max(0.0, 1 - i / cfg.iterations) if decay else 1.0)
    kl_ctl = ppo.AdaptiveKL(cfg.kl_coef, cfg.kl_target) if cfg.kl_target else ppo.FixedKL(cfg.kl_coef)
    return _Optim(value_head, params, optimizer, scheduler, kl_ctl)


async def _run_rl(cfg: RLConfig, acc, reward: Reward, client, metric_name: str, pseudo_label, on_iteration,
                  shots: list[Example] | None, llm_settings: dict[str, Any] | None) -> dict[str, Any]:
    rank, world = acc.process_index, acc.num_processes
    main = acc.is_main_process  # the one process that writes the run folder and calls the LLM for dev scores
    if cfg.batch_size % world:
        raise DSPError(f"--batch-size {cfg.batch_size} must be a multiple of the {world} processes")
    run_dir, checkpoint = open_run_folder(cfg, acc, "rl")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    dev = _dev(cfg)
    train = _train_inputs(cfg, rl_shots(cfg, dev) if shots is None else shots)
    policy, reference = _load_policies(cfg, checkpoint, accel.run_device(acc, cfg.device))
    o = _build_optim(cfg, policy)
    # prepared for fp16's loss scaling (step, unscale before the clip); the scheduler is not: accelerate
    # would step it once per process
    o.optimizer = acc.prepare(o.optimizer)
    accel.broadcast_parameters(acc, o.params)
    it = 0
    calls_before = 0  # LLM requests of the sessions before a resume, so charts/llm_calls counts the whole run
    if checkpoint is not None:
        state = load_trainer_state(checkpoint, o.optimizer, o.scheduler, o.modules, rank=rank, world=world)
        it = state["iteration"]
        o.kl_ctl.load_state_dict(state["kl_ctl"])
        calls_before = state.get("llm_calls", 0)  # checkpoints written before this count was kept lack it
    save_run_config(run_dir, acc, "rl", cfg, llm_settings)  # the run goes on: its settings are these

    def llm_calls() -> int:  # the whole run's so far (a collective: every process calls it)
        return calls_before + _requests(acc, client)

    logger = RunLog(run_dir, resume_step=it) if main else None
    if main and dev:
        write_dev_articles(run_dir, dev[:SHOWN_DEV])
    val_key = f"val/{metric_name}"
    started = time.time()
    metrics: dict[str, Any] = {}
    stopped: str | None = None
    if it == 0 and dev and main:
        try:
            logger.write(0, _dev_metrics(await evaluate_dev(policy, reward, dev), val_key))
        except BudgetExceeded as e:
            stopped = f"{e} (during the first dev evaluation)"
    if accel.mean(acc, float(stopped is not None)) > 0:  # every rank learns that rank 0 stopped
        stopped = stopped or "rank 0 reached its call cap during the first dev evaluation"
    # whole batches only: a short last batch would split unevenly over processes (and stall them)
    per_epoch = max(1, len(train) // cfg.batch_size)
    bar = tqdm(total=cfg.iterations, initial=it, desc=f"rl/{cfg.algo}", unit="it", disable=not main)
    try:
        while it < cfg.iterations and stopped is None:
            epoch, pos = divmod(it, per_epoch)
            batch = [train[i] for i in _batch_order(len(train), epoch, cfg.seed)[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]]
            resets = reset_prefixes(batch, cfg.samples_per_input, cfg.reset_prob, pseudo_label)
            mine = list(range(rank, len(batch), world)) if world > 1 else None  # each input is rolled out by one process
            try:
                ro, rewards, timing = await rollout_and_score(policy, reference, o.value_head, batch, cfg.samples_per_input,
                                                              resets, reward, overlap=cfg.overlap, mine=mine, acc=acc,
                                                              greedy=ALGOS[cfg.algo].greedy_baseline)
            except BudgetExceeded as e:
                stopped = f"{e.cap} after {it} iterations{RESUME}"
            if accel.mean(acc, float(stopped is not None)) > 0:  # all ranks stop together
                stopped = stopped or f"another process reached its call cap (after {it} iterations)"
                break
            t2 = time.time()
            adv, returns = advantages(cfg, ro, rewards, o.kl_ctl.value, acc)
            metrics = update(cfg, policy, o.value_head, o.optimizer, ro, adv, returns, o.kl_ctl.value, o.params, acc)
            o.scheduler.step()
            it += 1
            kl = accel.mean(acc, float(((ro.logprob - ro.ref_logprob) * ro.mask).sum(1).mean()))
            o.kl_ctl.update(kl, len(ro.examples) * world)
            all_rewards = torch.tensor(accel.gather(acc, rewards.tolist()))
            ok = all_rewards[~torch.isnan(all_rewards)]
            metrics.update({
                "charts/reward": float(ok.mean()) if len(ok) else math.nan,
                "charts/reward_std": float(ok.std()) if len(ok) > 1 else math.nan,
                "charts/reward_missing": int(torch.isnan(all_rewards).sum()),
                "objective/kl": kl, "objective/kl_coef": o.kl_ctl.value, "charts/lr": o.scheduler.get_last_lr()[0],
                **timing, "time/update": time.time() - t2,
                "samples/hint": ro.hints[0], **getattr(reward, "last_metrics", {}),
            })
            if ro.baseline is not None:  # the greedy hints' reward: what dsp eval would see on these inputs
                greedy = torch.tensor(accel.gather(acc, ro.baseline[:: cfg.samples_per_input].tolist()))
                metrics["charts/greedy_reward"] = float(greedy.nanmean())
            if client is not None:
                metrics.update({"charts/llm_calls": llm_calls(),
                                "charts/cache_hit_rate": client.usage.as_dict()["cache_hit_rate"]})
            if main and dev and ((cfg.eval_every and it % cfg.eval_every == 0) or it == cfg.iterations):
                try:
                    metrics.update(_dev_metrics(await evaluate_dev(policy, reward, dev), val_key))
                except BudgetExceeded as e:  # the iteration's update stands: log and checkpoint it, then stop
                    stopped = f"{e.cap} during the dev evaluation after iteration {it}{RESUME}"
            if main:
                logger.write(it, metrics)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['charts/reward']:.3f}", kl=f"{kl:.3f}",
                            **({"calls": metrics["charts/llm_calls"]} if "charts/llm_calls" in metrics else {}))
            if it % cfg.save_every == 0 or it == cfg.iterations:
                _checkpoint(acc, run_dir, policy, o, it, llm_calls())
                if main:
                    write_run_report(run_dir)
            acc.wait_for_everyone()
            if on_iteration is not None:
                on_iteration(it, policy)
            if accel.mean(acc, float(stopped is not None)) > 0:
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()

    if stopped is not None and it % cfg.save_every != 0:
        _checkpoint(acc, run_dir, policy, o, it, llm_calls())
    if not main:
        acc.wait_for_everyone()
        return {"iterations": it, "rank": rank, "stopped": stopped}
    save_final_policy(run_dir, policy)
    plot_curves(run_dir, ("charts/reward", val_key, "objective/kl"))
    # a reward or dev score that could not be computed is NaN in memory, null in the file
    result = finite_or_none(_result(cfg, run_dir, it, stopped, time.time() - started, reward, metrics, val_key, client))
    write_json_atomic(run_dir / "result.json", result)
    write_run_report(run_dir)
    acc.wait_for_everyone()
    return result


def _requests(acc, client) -> int:
    """LLM requests sent so far in this session by all processes (a collective; 0 without an LLM)."""
    if client is None:
        return 0
    return int(accel.sum_tensor(acc, torch.tensor([client.usage.requests], dtype=torch.float64)).item())


def _checkpoint(acc, run_dir: Path, policy, o: _Optim, it: int, llm_calls: int) -> None:
    """Every process hands in its random state (a collective); the main one writes the checkpoint."""
    rng_ranks = accel.gather_rng_states(acc)
    if acc.is_main_process:
        save_checkpoint(run_dir, policy, o.optimizer, o.scheduler,
                        {"iteration": it, "kl_ctl": o.kl_ctl.state_dict(), "llm_calls": llm_calls},
                        o.modules, rng_ranks=rng_ranks)


def _result(cfg: RLConfig, run_dir: Path, it: int, stopped: str | None, seconds: float, reward: Reward,
            metrics: dict[str, Any], val_key: str, client) -> dict[str, Any]:
    """result.json: how far the run got, why it stopped, the last iteration's charts, first and last dev score."""
    import json

    result = {
        "iterations": it, "algo": cfg.algo, "stopped": stopped, "seconds": round(seconds, 1),
        "reward_missing": getattr(reward, "missing", None),
        **{k: v for k, v in metrics.items() if k.startswith(("charts/", "objective/"))},
    }
    vals = [row[val_key] for row in map(json.loads, (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines())
            if val_key in row]
    if vals:
        result[f"{val_key}_first"], result[f"{val_key}_last"] = vals[0], vals[-1]
    if client is not None:
        result["llm"] = client.usage.as_dict()
    return result


async def run_rl_with_llm(cfg: RLConfig, client, task=None, **kw) -> dict[str, Any]:
    """`dsp rl` with the LLM as the reward: the task's prompt and metric, cfg's sampling and baseline."""
    from dsp.tasks import SummarizationTask
    from dsp.train.reward import HintHitShaping, LLMReward

    task = task or SummarizationTask()
    shots = rl_shots(cfg, _dev(cfg))
    reward = HintHitShaping(LLMReward(client, task, shots, samples=cfg.llm_samples, temperature=cfg.llm_temperature,
                                      baseline=cfg.baseline), cfg.hint_hit_coef, task.separator)
    return await run_rl(cfg, reward, client=client, metric_name=task.metric, pseudo_label=task.pseudo_label,
                        shots=shots, **kw)
