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
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from tqdm.auto import tqdm

from dsp.data import Example
from dsp.errors import BudgetExceeded, DSPError, MissingSplit
from dsp.io import RunLock, finite_or_none, write_json_atomic
from dsp.policy.base import TrainablePolicy
from dsp.policy.loading import load_policy
from dsp.shots import draw_shots, overlaps
from dsp.train import accel, ppo
from dsp.train.algos import ALGOS
from dsp.train.configs import RLConfig
from dsp.train.logs import RunLog, plot_curves, write_dev_articles, write_run_report
from dsp.train.phases import advantages, reset_prefixes, rollout_and_score, update
from dsp.train.reward import Reward
from dsp.train.rollout import Rollout
from dsp.train.sft import batch_order
from dsp.train.state import load_trainer_state, open_run_folder, save_checkpoint, save_final_policy, save_run_config

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dsp.llm.client import AsyncLLMClient

# How a run stopped at a cap goes on: from its checkpoint, with a cap of the new invocation's own.
RESUME = "; the checkpoint is written: --resume goes on, the cap counting that invocation's calls"
SHOWN_DEV = 5
"""Dev articles whose greedy hints each dev evaluation logs (`dev/hints`), for the report to follow."""


def _dev(cfg: RLConfig) -> list[Example]:
    try:
        return cfg.examples(cfg.dev_split, limit=cfg.dev_limit)
    except MissingSplit:
        return []


async def evaluate_dev(policy: TrainablePolicy, reward: Reward, dev: list[Example]) -> dict[str, Any]:
    """The dev metric of the greedy hints (`val`), and the first SHOWN_DEV articles' hints and scores (`dev/hints`)."""
    hints = policy.generate([e.input for e in dev])
    scores = await reward.metric(dev, hints)
    values = [v for v in scores if not math.isnan(v)]
    shown = [
        {"id": e.id, "hint": h, "score": None if math.isnan(v) else v}
        for e, h, v in list(zip(dev, hints, scores))[:SHOWN_DEV]
    ]
    return {"val": sum(values) / len(values) if values else math.nan, "dev/hints": shown}


async def run_rl(
    cfg: RLConfig,
    reward: Reward,
    *,
    client: AsyncLLMClient | None = None,
    metric_name: str = "metric",
    pseudo_label: Callable[[Example], str] | None = None,
    on_iteration: Callable[[int, Any], None] | None = None,
    shots: list[Example] | None = None,
    llm_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train; checkpoints every `save_every` iterations; returns the final metrics.

    `client` (optional) gives usage counts; `pseudo_label` is needed by --reset-prob;
    `on_iteration(iteration, policy)` runs after each iteration is logged and checkpointed;
    `shots`: the reward's few-shot examples, left out of the rollouts (None: `rl_shots(cfg, dev)`);
    `llm_settings` (the LLM's base_url, model and --llm-param fields) are saved in config.json beside cfg.
    """
    if cfg.reset_prob and pseudo_label is None:
        raise DSPError("--reset-prob needs the task's pseudo-labels")
    acc = accel.make_accelerator(cfg.device, cfg.mixed_precision)
    with RunLock(cfg.output_dir) if acc.is_main_process else contextlib.nullcontext():  # one writer per run folder
        run = RLRun(
            cfg,
            acc,
            reward,
            client=client,
            metric_name=metric_name,
            pseudo_label=pseudo_label,
            on_iteration=on_iteration,
            shots=shots,
            llm_settings=llm_settings,
        )
        return await run.run()


def rl_shots(cfg: RLConfig, dev: list[Example]) -> list[Example]:
    """The reward's few-shot examples: the first of `shots_split` that are not dev examples (one --data file
    serves every split, so they then come from past the dev ones)."""
    return draw_shots(
        cfg.data,
        cfg.shots,
        dev,
        split=cfg.shots_split,
        input_field=cfg.input_field,
        target_field=cfg.target_field,
        config_name=cfg.data_config,
    )


def _train_inputs(cfg: RLConfig, shots: list[Example]) -> list[Example]:
    train = cfg.examples(cfg.train_split, limit=cfg.limit)
    is_shot = overlaps(shots)
    train = [e for e in train if not is_shot(e)]  # the few-shot examples are in every prompt: not rollout inputs
    if not train:
        raise DSPError(f"{cfg.data}: no training inputs left to roll out")
    return train


def _load_policies(cfg: RLConfig, checkpoint: Path | None, device: str) -> tuple[TrainablePolicy, TrainablePolicy]:
    """(the trained policy, the frozen KL reference), with the run's sampling settings on both."""
    policy = load_policy(str(checkpoint / "policy") if checkpoint else cfg.policy, device=device)
    reference = load_policy(cfg.policy, device=device)
    if not isinstance(policy, TrainablePolicy):
        raise DSPError(f"{cfg.policy}: a {policy.kind} policy cannot be trained by RL")
    if cfg.hint_vocab is not None:
        if policy.kind != "seq2seq":
            raise DSPError(
                f"--hint-vocab applies to seq2seq policies; a {policy.kind} policy picks input words already"
            )
        policy.hint_vocab = reference.hint_vocab = cfg.hint_vocab  # one mask for sampling and for log-probs
    policy.temperature = reference.temperature = cfg.policy_temperature  # the KL compares like with like
    if cfg.hint_words is not None:
        if policy.kind != "extractive":
            raise DSPError(
                f"--hint-words applies to extractive policies; a {policy.kind} policy decides its hint's length"
            )
        policy.hint_words = reference.hint_words = cfg.hint_words
    for p in reference.parameters():
        p.requires_grad_(False)
    policy.train(False)  # no dropout: rollout log-probs equal the update's fresh ones
    reference.train(False)
    return policy, reference


@dataclass
class UpdateState:
    """What the update steps change and the checkpoint carries besides the policy: the value head (PPO), the
    parameters trained, their optimizer and its schedule, and the KL controller."""

    value_head: torch.nn.Module | None
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    kl_ctl: ppo.FixedKL | ppo.AdaptiveKL

    @classmethod
    def build(cls, cfg: RLConfig, policy: TrainablePolicy) -> UpdateState:
        value_head = torch.nn.Linear(policy.hidden_size, 1).to(policy.device) if ALGOS[cfg.algo].value_head else None
        params = list(policy.parameters()) + (list(value_head.parameters()) if value_head is not None else [])
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        decay = cfg.lr_schedule == "linear"
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda i: max(0.0, 1 - i / cfg.iterations) if decay else 1.0
        )
        kl_ctl = ppo.AdaptiveKL(cfg.kl_coef, cfg.kl_target) if cfg.kl_target else ppo.FixedKL(cfg.kl_coef)
        return cls(value_head, params, optimizer, scheduler, kl_ctl)

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"value_head": self.value_head} if self.value_head is not None else {}


class RLRun:
    """One run, read top to bottom in `run`: `setup`, then `iteration`s (rollout and score, update, log), each
    followed by `evaluate` and `checkpoint` when due, then `finish`. Under `accelerate launch` every process
    runs it; the main one alone writes the run folder and makes the dev evaluation's LLM calls."""

    def __init__(
        self,
        cfg: RLConfig,
        acc: Accelerator,
        reward: Reward,
        *,
        client: AsyncLLMClient | None,
        metric_name: str,
        pseudo_label: Callable[[Example], str] | None,
        on_iteration: Callable[[int, Any], None] | None,
        shots: list[Example] | None,
        llm_settings: dict[str, Any] | None,
    ):
        self.cfg, self.acc, self.reward, self.client = cfg, acc, reward, client
        self.pseudo_label, self.on_iteration, self.shots, self.llm_settings = (
            pseudo_label,
            on_iteration,
            shots,
            llm_settings,
        )
        self.val_key = f"val/{metric_name}"
        self.main = acc.is_main_process
        self.it = 0
        self.calls_before = 0  # LLM requests of the sessions before a resume, so charts/llm_calls counts the whole run
        self.stopped: str | None = None
        self.metrics: dict[str, Any] = {}
        self.logger: RunLog | None = None

    async def run(self) -> dict[str, Any]:
        self.setup()
        bar = tqdm(
            total=self.cfg.iterations, initial=self.it, desc=f"rl/{self.cfg.algo}", unit="it", disable=not self.main
        )
        try:
            await self.evaluate_first()
            while self.it < self.cfg.iterations and self.stopped is None:
                if not await self.iteration():
                    break
                bar.update(1)
                bar.set_postfix(self.progress())
                if self.it % self.cfg.save_every == 0 or self.it == self.cfg.iterations:
                    self.checkpoint()
                self.acc.wait_for_everyone()
                if self.on_iteration is not None:
                    self.on_iteration(self.it, self.policy)
                self.vote_stop("another process stopped during the dev evaluation")
        finally:
            bar.close()
            if self.logger is not None:
                self.logger.close()
        return self.finish()

    # -- the steps ----------------------------------------------------------------------------
    def setup(self) -> None:
        """The run folder, the data, both policies, the optimizer, and a resume's checkpoint."""
        cfg, acc = self.cfg, self.acc
        if cfg.batch_size % acc.num_processes:
            raise DSPError(f"--batch-size {cfg.batch_size} must be a multiple of the {acc.num_processes} processes")
        self.run_dir, checkpoint = open_run_folder(cfg, acc, "rl")
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.dev = _dev(cfg)
        self.train = _train_inputs(cfg, rl_shots(cfg, self.dev) if self.shots is None else self.shots)
        self.policy, self.reference = _load_policies(cfg, checkpoint, accel.run_device(acc, cfg.device))
        self.opt = UpdateState.build(cfg, self.policy)
        # prepared for fp16's loss scaling (step, unscale before the clip); the scheduler is not: accelerate
        # would step it once per process
        self.opt.optimizer = acc.prepare(self.opt.optimizer)
        accel.broadcast_parameters(acc, self.opt.params)
        if checkpoint is not None:
            self.resume(checkpoint)
        save_run_config(self.run_dir, acc, "rl", cfg, self.llm_settings)  # the run goes on: its settings are these
        if self.main:
            self.logger = RunLog(self.run_dir, resume_step=self.it)
            if self.dev:
                write_dev_articles(self.run_dir, self.dev[:SHOWN_DEV])
        self.started = time.time()

    def resume(self, checkpoint: Path) -> None:
        o = self.opt
        state = load_trainer_state(
            checkpoint, o.optimizer, o.scheduler, o.modules, rank=self.acc.process_index, world=self.acc.num_processes
        )
        self.it = state["iteration"]
        o.kl_ctl.load_state_dict(state["kl_ctl"])
        self.calls_before = state.get("llm_calls", 0)  # checkpoints written before this count was kept lack it

    async def evaluate_first(self) -> None:
        """The starting policy's dev score (a new run only), so the first iteration has something to beat."""
        if self.it == 0 and self.dev and self.main:
            try:
                self.logger.write(0, await self.evaluate())
            except BudgetExceeded as e:
                self.stopped = f"{e} (during the first dev evaluation)"
        self.vote_stop("rank 0 reached its call cap during the first dev evaluation")

    async def iteration(self) -> bool:
        """Roll out, score, update, log; False when a process reached its call cap before the update."""
        cfg = self.cfg
        try:
            ro, rewards, timing = await self.rollout()
        except BudgetExceeded as e:
            self.stopped = f"{e.cap} after {self.it} iterations{RESUME}"
        if self.vote_stop(f"another process reached its call cap (after {self.it} iterations)"):
            return False
        started = time.time()
        o = self.opt
        adv, returns = advantages(cfg, ro, rewards, o.kl_ctl.value, self.acc)
        losses = update(
            cfg, self.policy, o.value_head, o.optimizer, ro, adv, returns, o.kl_ctl.value, o.params, self.acc
        )
        o.scheduler.step()
        self.it += 1
        self.metrics = {
            **losses,
            **self.charts(ro, rewards),
            **timing,
            "time/update": time.time() - started,
            "samples/hint": ro.hints[0],
            **getattr(self.reward, "last_metrics", {}),
        }
        if self.client is not None:
            self.metrics.update(
                {
                    "charts/llm_calls": self.llm_calls(),
                    "charts/cache_hit_rate": self.client.usage.as_dict()["cache_hit_rate"],
                }
            )
        if self.main and self.dev and ((cfg.eval_every and self.it % cfg.eval_every == 0) or self.it == cfg.iterations):
            try:
                self.metrics.update(await self.evaluate())
            except BudgetExceeded as e:  # the iteration's update stands: log and checkpoint it, then stop
                self.stopped = f"{e.cap} during the dev evaluation after iteration {self.it}{RESUME}"
        if self.main:
            self.logger.write(self.it, self.metrics)
        return True

    async def rollout(self) -> tuple[Rollout, torch.Tensor, dict[str, float]]:
        """This iteration's batch: K hints per input sampled, their log-probabilities taken, their rewards asked."""
        cfg, acc = self.cfg, self.acc
        per_epoch = max(1, len(self.train) // cfg.batch_size)  # whole batches only: a short one would split unevenly
        epoch, pos = divmod(self.it, per_epoch)
        order = batch_order(len(self.train), epoch, cfg.seed)[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        batch = [self.train[i] for i in order]
        resets = reset_prefixes(batch, cfg.samples_per_input, cfg.reset_prob, self.pseudo_label)
        world = acc.num_processes
        mine = list(range(acc.process_index, len(batch), world)) if world > 1 else None  # each input: one process
        return await rollout_and_score(
            self.policy,
            self.reference,
            self.opt.value_head,
            batch,
            cfg.samples_per_input,
            resets,
            self.reward,
            overlap=cfg.overlap,
            mine=mine,
            acc=acc,
            greedy=ALGOS[cfg.algo].greedy_baseline,
        )

    def charts(self, ro: Rollout, rewards: torch.Tensor) -> dict[str, Any]:
        """The iteration's rewards and KL over every process (the KL controller steps on the KL here)."""
        acc, o = self.acc, self.opt
        kl = accel.mean(acc, float(((ro.logprob - ro.ref_logprob) * ro.mask).sum(1).mean()))
        o.kl_ctl.update(kl, len(ro.examples) * acc.num_processes)
        all_rewards = torch.tensor(accel.gather(acc, rewards.tolist()))
        ok = all_rewards[~torch.isnan(all_rewards)]
        out = {
            "charts/reward": float(ok.mean()) if len(ok) else math.nan,
            "charts/reward_std": float(ok.std()) if len(ok) > 1 else math.nan,
            "charts/reward_missing": int(torch.isnan(all_rewards).sum()),
            "objective/kl": kl,
            "objective/kl_coef": o.kl_ctl.value,
            "charts/lr": o.scheduler.get_last_lr()[0],
        }
        if ro.baseline is not None:  # the greedy hints' reward: what dsp eval would see on these inputs
            greedy = torch.tensor(accel.gather(acc, ro.baseline[:: self.cfg.samples_per_input].tolist()))
            out["charts/greedy_reward"] = float(greedy.nanmean())
        return out

    async def evaluate(self) -> dict[str, Any]:
        """The dev score of the greedy hints, and the hints of the articles the report follows."""
        result = await evaluate_dev(self.policy, self.reward, self.dev)
        return {self.val_key: result["val"], "dev/hints": result["dev/hints"]}

    def checkpoint(self) -> None:
        """Every process hands in its random state (a collective); the main one writes the checkpoint and the report."""
        rng_ranks = accel.gather_rng_states(self.acc)
        llm_calls = self.llm_calls()
        if self.main:
            o = self.opt
            save_checkpoint(
                self.run_dir,
                self.policy,
                o.optimizer,
                o.scheduler,
                {"iteration": self.it, "kl_ctl": o.kl_ctl.state_dict(), "llm_calls": llm_calls},
                o.modules,
                rng_ranks=rng_ranks,
            )
            write_run_report(self.run_dir)

    def finish(self) -> dict[str, Any]:
        """A stopped run's last checkpoint; then the main process writes policy/, curves.png, result.json, report.html."""
        if self.stopped is not None and self.it % self.cfg.save_every != 0:
            self.checkpoint()
        if not self.main:
            self.acc.wait_for_everyone()
            return {"iterations": self.it, "rank": self.acc.process_index, "stopped": self.stopped}
        save_final_policy(self.run_dir, self.policy)
        plot_curves(self.run_dir, ("charts/reward", self.val_key, "objective/kl"))
        # a reward or dev score that could not be computed is NaN in memory, null in the file
        result = finite_or_none(
            _result(
                self.cfg,
                self.run_dir,
                self.it,
                self.stopped,
                time.time() - self.started,
                self.reward,
                self.metrics,
                self.val_key,
                self.client,
            )
        )
        write_json_atomic(self.run_dir / "result.json", result)
        write_run_report(self.run_dir)
        self.acc.wait_for_everyone()
        return result

    # -- helpers ------------------------------------------------------------------------------
    def vote_stop(self, otherwise: str) -> bool:
        """Whether any process has stopped (a collective: all stop together); one that did not takes `otherwise`
        as its reason."""
        if accel.any_process(self.acc, self.stopped is not None):
            self.stopped = self.stopped or otherwise
        return self.stopped is not None

    def llm_calls(self) -> int:
        """The whole run's LLM requests so far, by all processes (a collective; 0 without an LLM)."""
        if self.client is None:
            return self.calls_before
        sent = torch.tensor([self.client.usage.requests], dtype=torch.float64)
        return self.calls_before + int(accel.sum_tensor(self.acc, sent).item())

    def progress(self) -> dict[str, str]:
        m = self.metrics
        return {
            "reward": f"{m['charts/reward']:.3f}",
            "kl": f"{m['objective/kl']:.3f}",
            **({"calls": str(m["charts/llm_calls"])} if "charts/llm_calls" in m else {}),
        }


def _result(
    cfg: RLConfig,
    run_dir: Path,
    it: int,
    stopped: str | None,
    seconds: float,
    reward: Reward,
    metrics: dict[str, Any],
    val_key: str,
    client,
) -> dict[str, Any]:
    """result.json: how far the run got, why it stopped, the last iteration's charts, first and last dev score."""
    result = {
        "iterations": it,
        "algo": cfg.algo,
        "stopped": stopped,
        "seconds": round(seconds, 1),
        "reward_missing": getattr(reward, "missing", None),
        **{k: v for k, v in metrics.items() if k.startswith(("charts/", "objective/"))},
    }
    vals = [
        row[val_key]
        for row in map(json.loads, (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines())
        if val_key in row
    ]
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
    reward = HintHitShaping(
        LLMReward(client, task, shots, samples=cfg.llm_samples, temperature=cfg.llm_temperature, baseline=cfg.baseline),
        cfg.hint_hit_coef,
        task.separator,
    )
    return await run_rl(
        cfg, reward, client=client, metric_name=task.metric, pseudo_label=task.pseudo_label, shots=shots, **kw
    )
