"""`dsp sft`: supervised fine-tuning of a hint policy on pseudo-label hints."""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from dsp.data import Example
from dsp.errors import DSPError, MissingSplit
from dsp.io import RunLock, finite_or_none, write_json_atomic, write_jsonl_atomic
from dsp.metrics import hint_f1
from dsp.policy.base import TrainablePolicy
from dsp.policy.choose import DEFAULT_LR, new_policy, resolve_policy_type
from dsp.policy.loading import load_policy
from dsp.tasks import SummarizationTask, Task
from dsp.train import accel
from dsp.train.configs import SFTConfig
from dsp.train.logs import RunLog
from dsp.train.state import load_trainer_state, open_run_folder, save_checkpoint, save_final_policy, save_run_config

if TYPE_CHECKING:
    from accelerate import Accelerator

ExtraLoss = Callable[[TrainablePolicy, list[str], list[str]], torch.Tensor]
"""A term added to each step's loss: (policy, inputs, hints) -> a scalar (distillation's KL to its teacher)."""


def load_train_dev(cfg: SFTConfig) -> tuple[list[Example], list[Example]]:
    """The training and dev examples an SFT run with this config uses."""
    train = cfg.examples(cfg.train_split, limit=cfg.limit, need_target=cfg.labels == "reference")
    return _split_dev(cfg, train)


def _split_dev(cfg: SFTConfig, train: list[Example]) -> tuple[list[Example], list[Example]]:
    if cfg.dev_split:
        try:
            return train, cfg.examples(cfg.dev_split, limit=cfg.dev_limit, need_target=cfg.labels == "reference")
        except MissingSplit:
            pass
    n_dev = max(1, min(cfg.dev_limit, len(train) // 10))
    return train[:-n_dev], train[-n_dev:]


HINT_WORDS_GRID = (6, 8, 10, 12, 14, 16, 20, 24, 30)


def calibrate_hint_words(
    policy: TrainablePolicy, dev: list[Example], labels: list[str], batch_size: int
) -> dict[int, float]:
    """Dev hint F1 of the extractive policy's greedy hints at each hint length of the grid."""
    by_length = policy.hints_by_length([e.input for e in dev], HINT_WORDS_GRID, batch_size=batch_size)
    return {k: sum(hint_f1(h, y) for h, y in zip(by_length[k], labels)) / len(dev) for k in HINT_WORDS_GRID}


def evaluate_dev(policy: TrainablePolicy, dev: list[Example], labels: list[str], batch_size: int) -> dict[str, float]:
    """Dev loss (teacher forcing for seq2seq, selection loss for extractive) and hint F1 of greedy hints."""
    policy.train(False)
    losses = []
    with torch.no_grad():
        for i in range(0, len(dev), batch_size):
            batch = dev[i : i + batch_size]
            losses.append(policy.loss([e.input for e in batch], labels[i : i + batch_size]).item() * len(batch))
    hints = policy.generate([e.input for e in dev], batch_size=batch_size)
    policy.train(True)
    return {
        "dev/loss": sum(losses) / len(dev),
        "dev/hint_f1": sum(hint_f1(h, y) for h, y in zip(hints, labels)) / len(dev),
    }


def batch_order(n: int, epoch: int, seed: int) -> list[int]:
    # Depends only on (seed, epoch), so a resumed run sees the same order.
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def run_sft(
    cfg: SFTConfig,
    task: Task | None = None,
    on_step: Callable[[int, Any], None] | None = None,
    labels: dict[str, str] | None = None,
    *,
    extra_train: Sequence[Example] = (),
    initial_policy: TrainablePolicy | None = None,
    extra_loss: ExtraLoss | None = None,
    accelerator: Accelerator | None = None,
    saved_as: tuple[str, Any] | None = None,
    llm_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, checkpoint, evaluate; returns the final metrics. The run folder ends with policy/.

    `labels` ({example.where: hint}; `where` is file:line, unique across splits, unlike ids) replaces the task's pseudo-labels (LLM-written labels, a
    teacher's hints); examples without one are left out. `extra_train` adds inputs (labelled by
    `labels`), `initial_policy` replaces the fresh policy (a student cut from its teacher), and
    `extra_loss(policy, inputs, hints)` is added to each step's loss (token-level distillation).
    `on_step(step, policy)` is called after each step is logged and checkpointed. One process at a time
    writes a run folder (`RunLock`); under `accelerate launch` that is the main process, and each
    step's batch is split over the processes. `accelerator`: the caller's (`dsp distill`), else a new one.
    `saved_as`: (command, settings) the run folder's config.json records and a resume is checked against
    (`dsp distill`'s own; default ("sft", cfg)); `llm_settings` (the LLM's base_url, model and --llm-param fields) are saved beside.
    """
    acc = accelerator or accel.make_accelerator(cfg.device, cfg.mixed_precision)
    with RunLock(cfg.output_dir) if acc.is_main_process else contextlib.nullcontext():
        run = SFTRun(
            cfg,
            acc,
            task or SummarizationTask(),
            labels=labels,
            extra_train=list(extra_train),
            initial_policy=initial_policy,
            extra_loss=extra_loss,
            saved_as=saved_as or ("sft", cfg),
            llm_settings=llm_settings,
        )
        return run.run(on_step)


def _make_policy(
    cfg: SFTConfig,
    task: Task,
    checkpoint: Path | None,
    initial_policy: TrainablePolicy | None,
    train: list[Example],
    train_labels: list[str],
    device: str,
) -> tuple[TrainablePolicy, str | None]:
    """(the policy to train, its model name): the checkpoint's, the caller's, or a new one of the configured type."""
    if checkpoint is not None:
        return load_policy(str(checkpoint / "policy"), device=device), cfg.policy
    if initial_policy is not None:
        return initial_policy, cfg.policy
    policy_type, name = resolve_policy_type(cfg.policy_type, cfg.policy)
    if cfg.policy_type == "auto" and cfg.policy is None and policy_type == "extractive" and not task.extractive_hints:
        policy_type, name = "seq2seq", "scratch"  # offline, and the hints are not input words
    policy = new_policy(
        policy_type,
        name,
        train_texts=[e.input for e in train] + train_labels,
        scratch_size=cfg.scratch_size,
        max_input_tokens=cfg.max_input_tokens,
        max_hint_tokens=cfg.max_hint_tokens,
        separator=task.separator,
        hint_words=cfg.hint_words,
        device=device,
    )
    return policy, name


def sft_step(
    acc: Accelerator,
    policy: TrainablePolicy,
    optimizer: torch.optim.Optimizer,
    inputs: list[str],
    hints: list[str],
    extra_loss: ExtraLoss | None,
    share: float,
    grad_clip: float,
) -> float:
    """One optimizer step on this process's examples of the batch; returns the loss over the whole batch.

    `share` is this process's examples x processes / the batch's examples: the mean of the processes'
    gradients is then the gradient of the mean loss over the whole batch, also when the last batch
    of an epoch does not split evenly (a process left with none adds zero)."""
    optimizer.zero_grad(set_to_none=True)
    local = 0.0
    if inputs:
        with accel.autocast(acc):
            loss = policy.loss(inputs, hints)
            if extra_loss is not None:
                loss = loss + extra_loss(policy, inputs, hints)
        acc.backward(loss * share if share != 1 else loss)
        local = loss.item() * share
    params = list(policy.parameters())
    accel.average_gradients(acc, params)  # no-op in one process
    acc.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return accel.mean(acc, local)


class SFTRun:
    """One run, read top to bottom in `run`: `setup`, then optimizer `step`s, each followed by `evaluate` and
    `checkpoint` when due, then `finish`. Under `accelerate launch` every process runs it, each step's batch
    split over them; the main one alone writes the run folder."""

    def __init__(
        self,
        cfg: SFTConfig,
        acc: Accelerator,
        task: Task,
        *,
        labels: dict[str, str] | None,
        extra_train: list[Example],
        initial_policy: TrainablePolicy | None,
        extra_loss: ExtraLoss | None,
        saved_as: tuple[str, Any],
        llm_settings: dict[str, Any] | None,
    ):
        self.cfg, self.acc, self.task, self.labels = cfg, acc, task, labels
        self.extra_train, self.initial_policy, self.extra_loss = extra_train, initial_policy, extra_loss
        self.saved_as, self.llm_settings = saved_as, llm_settings
        self.main = acc.is_main_process
        self.step_count = 0
        self.metrics: dict[str, Any] = {}
        self.log: RunLog | None = None

    def run(self, on_step: Callable[[int, Any], None] | None) -> dict[str, Any]:
        self.setup()
        bar = tqdm(total=self.total, initial=self.step_count, desc="sft", unit="step", disable=not self.main)
        try:
            while self.step_count < self.total:
                loss = self.step()
                if self.main and (self.step_count % self.cfg.eval_every == 0 or self.step_count == self.total):
                    self.metrics.update(self.evaluate())
                if self.main:
                    self.log.write(self.step_count, self.metrics)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.3f}",
                    **({"dev_f1": f"{self.metrics['dev/hint_f1']:.3f}"} if "dev/hint_f1" in self.metrics else {}),
                )
                if self.step_count % self.cfg.save_every == 0 or self.step_count == self.total:
                    self.checkpoint()
                if on_step is not None:
                    on_step(self.step_count, self.policy)
        finally:
            if self.log is not None:
                self.log.close()
        bar.close()
        return self.finish()

    def setup(self) -> None:
        """The run folder, the labelled examples, the policy, the optimizer, and a resume's checkpoint."""
        cfg, acc = self.cfg, self.acc
        self.run_dir, checkpoint = open_run_folder(self.saved_as[1], acc, self.saved_as[0])
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.label_examples(*load_train_dev(cfg))
        self.policy, name = _make_policy(
            cfg,
            self.task,
            checkpoint,
            self.initial_policy,
            self.train,
            self.train_labels,
            accel.run_device(acc, cfg.device),
        )
        if cfg.freeze_layers:
            if self.policy.kind != "extractive":
                raise DSPError(f"--freeze-layers applies to extractive policies, not {self.policy.kind}")
            self.policy.freeze_lower(cfg.freeze_layers)
        lr = cfg.lr or DEFAULT_LR["scratch" if name == "scratch" else self.policy.kind]
        self.policy.train(True)
        accel.broadcast_parameters(acc, list(self.policy.parameters()))  # one starting point, whatever each drew
        self.steps_per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.total = cfg.max_steps or self.steps_per_epoch * cfg.epochs
        optimizer = torch.optim.AdamW(self.policy.param_groups(lr), lr=lr, weight_decay=0.01)
        self.scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * self.total), self.total)
        # prepared for fp16's loss scaling; the scheduler is not (accelerate would step it once per process)
        self.optimizer = acc.prepare(optimizer)
        if checkpoint is not None:
            self.step_count = load_trainer_state(
                checkpoint, self.optimizer, self.scheduler, rank=acc.process_index, world=acc.num_processes
            )["step"]
        save_run_config(self.run_dir, acc, *self.saved_as, self.llm_settings)  # the run goes on: its settings are these
        if self.labels is not None and self.main:
            write_jsonl_atomic(self.run_dir / "labels.jsonl", [{"where": k, "hint": v} for k, v in self.labels.items()])
        self.log = RunLog(self.run_dir, resume_step=self.step_count) if self.main else None  # drops lines past it
        self.started = time.time()

    def label_examples(self, train: list[Example], dev: list[Example]) -> None:
        """The examples and their hints: the caller's labels (examples without one left out), else pseudo-labels."""
        cfg, labels = self.cfg, self.labels
        train = train + self.extra_train
        if cfg.labels != "reference" and labels is None:
            raise DSPError(
                f"--labels {cfg.labels}: label the inputs first (dsp.train.labels, dsp.train.distill), "
                "then pass them in"
            )
        if labels is not None:
            train, dev = [e for e in train if labels.get(e.where)], [e for e in dev if labels.get(e.where)]
            if not train or not dev:
                raise DSPError("no training or dev example has a label: nothing to learn from")
        label = (lambda e: labels[e.where]) if labels is not None else self.task.pseudo_label
        self.train, self.dev = train, dev
        self.train_labels, self.dev_labels = [label(e) for e in train], [label(e) for e in dev]

    def step(self) -> float:
        """One optimizer step on the next batch (this process's share of it); returns the batch's loss."""
        cfg, world = self.cfg, self.acc.num_processes
        epoch, pos = divmod(self.step_count, self.steps_per_epoch)
        idx = batch_order(len(self.train), epoch, cfg.seed)[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        mine = idx[self.acc.process_index :: world]  # each example of the batch is trained on by one process
        loss = sft_step(
            self.acc,
            self.policy,
            self.optimizer,
            [self.train[i].input for i in mine],
            [self.train_labels[i] for i in mine],
            self.extra_loss,
            share=len(mine) * world / len(idx),
            grad_clip=cfg.grad_clip,
        )
        self.scheduler.step()
        self.step_count += 1
        self.metrics = {"epoch": epoch, "train/loss": loss, "charts/lr": self.scheduler.get_last_lr()[0]}
        return loss

    def evaluate(self) -> dict[str, float]:
        return evaluate_dev(self.policy, self.dev, self.dev_labels, self.cfg.batch_size)

    def checkpoint(self) -> None:
        """Every process hands in its random state (a collective: dropout differs per process); the main one writes."""
        rng_ranks = accel.gather_rng_states(self.acc)
        if self.main:
            save_checkpoint(
                self.run_dir,
                self.policy,
                self.optimizer,
                self.scheduler,
                {"step": self.step_count},
                rng_ranks=rng_ranks,
            )

    def finish(self) -> dict[str, Any]:
        if not self.main:
            self.acc.wait_for_everyone()  # returns once the run folder is complete
            return {"steps": self.step_count, "rank": self.acc.process_index}
        result = _finish(
            self.cfg,
            self.run_dir,
            self.policy,
            self.train,
            self.dev,
            self.dev_labels,
            self.metrics,
            self.step_count,
            time.time() - self.started,
        )
        self.acc.wait_for_everyone()
        return result


def _finish(
    cfg: SFTConfig,
    run_dir: Path,
    policy: TrainablePolicy,
    train: list[Example],
    dev: list[Example],
    dev_labels: list[str],
    metrics: dict[str, Any],
    step: int,
    seconds: float,
) -> dict[str, Any]:
    """The main process: calibrate the extractive hint length, save policy/ and result.json."""
    calibration = None
    if policy.kind == "extractive" and cfg.hint_words is None:
        calibration = calibrate_hint_words(policy, dev, dev_labels, cfg.batch_size)
        policy.hint_words = max(calibration, key=lambda k: (calibration[k], -k))
        metrics["dev/hint_f1"] = calibration[policy.hint_words]

    save_final_policy(run_dir, policy)
    result = {
        "steps": step,
        "train_examples": len(train),
        "dev_examples": len(dev),
        "parameters": policy.num_parameters(),
        "seconds": round(seconds, 1),
        "policy_type": policy.kind,
        **{k: v for k, v in metrics.items() if k.startswith("dev/")},
    }
    if policy.kind == "extractive":
        result["hint_words"] = policy.hint_words
    if calibration:
        result["dev/hint_f1_by_hint_words"] = calibration
    result = finite_or_none(result)  # a loss that diverged is reported as missing, not as invalid JSON
    write_json_atomic(run_dir / "result.json", result)
    return result
