"""`dsp sft`: supervised fine-tuning of a hint policy on pseudo-label hints."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from dsp.data import Example, load_examples
from dsp.errors import DSPError, MissingSplit
from dsp.io import RunLock, is_empty_run_folder, write_json_atomic, write_jsonl_atomic
from dsp.metrics import hint_f1
from dsp.policy.base import load_policy
from dsp.policy.choose import DEFAULT_LR, new_policy, resolve_device, resolve_policy_type
from dsp.tasks import SummarizationTask, Task
from dsp.train.configs import SFTConfig  # noqa: F401  (re-exported: the trainer's settings)
from dsp.train.logs import RunLog
from dsp.train.state import find_checkpoint, load_trainer_state, save_checkpoint, save_final_policy


def load_train_dev(cfg: SFTConfig) -> tuple[list[Example], list[Example]]:
    """The training and dev examples an SFT run with this config uses."""
    train = load_examples(cfg.data, split=cfg.train_split, input_field=cfg.input_field,
                          target_field=cfg.target_field, config_name=cfg.data_config, limit=cfg.limit,
                          need_target=cfg.labels == "reference")
    return _split_dev(cfg, train)


def _split_dev(cfg: SFTConfig, train: list[Example]) -> tuple[list[Example], list[Example]]:
    if cfg.dev_split:
        try:
            dev = load_examples(cfg.data, split=cfg.dev_split, input_field=cfg.input_field,
                                target_field=cfg.target_field, config_name=cfg.data_config, limit=cfg.dev_limit,
                                need_target=cfg.labels == "reference")
            return train, dev
        except MissingSplit:
            pass
    n_dev = max(1, min(cfg.dev_limit, len(train) // 10))
    return train[:-n_dev], train[-n_dev:]


HINT_WORDS_GRID = (6, 8, 10, 12, 14, 16, 20, 24, 30)


def calibrate_hint_words(policy, dev: list[Example], labels: list[str], batch_size: int) -> dict[int, float]:
    """Dev hint F1 of the extractive policy's greedy hints at each hint length of the grid."""
    by_length = policy.hints_by_length([e.input for e in dev], HINT_WORDS_GRID, batch_size=batch_size)
    return {k: sum(hint_f1(h, y) for h, y in zip(by_length[k], labels)) / len(dev) for k in HINT_WORDS_GRID}


def evaluate_dev(policy, dev: list[Example], labels: list[str], batch_size: int) -> dict[str, float]:
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


def _batch_order(n: int, epoch: int, seed: int) -> list[int]:
    # Depends only on (seed, epoch), so a resumed run sees the same order.
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def run_sft(cfg: SFTConfig, task: Task | None = None, on_step: Callable[[int], None] | None = None,
            labels: dict[str, str] | None = None, *, extra_train: Sequence[Example] = (), initial_policy=None,
            extra_loss: Callable[[Any, list[str], list[str]], torch.Tensor] | None = None) -> dict[str, Any]:
    """Train, checkpoint, evaluate; returns the final metrics. The run folder ends with policy/.

    `labels` ({example.where: hint}; `where` is file:line, unique across splits, unlike ids) replaces the task's pseudo-labels (LLM-written labels, a
    teacher's hints); examples without one are left out. `extra_train` adds inputs (labelled by
    `labels`), `initial_policy` replaces the fresh policy (a student cut from its teacher), and
    `extra_loss(policy, inputs, hints)` is added to each step's loss (token-level distillation).
    `on_step(step)` is called after each step is logged and checkpointed. One process at a time
    writes a run folder (`RunLock`).
    """
    with RunLock(cfg.output_dir):
        return _run_sft(cfg, task, on_step, labels, list(extra_train), initial_policy, extra_loss)


def _run_sft(cfg: SFTConfig, task: Task | None, on_step: Callable[[int], None] | None, labels: dict[str, str] | None,
             extra_train: list[Example], initial_policy, extra_loss) -> dict[str, Any]:
    task = task or SummarizationTask()
    run_dir = Path(cfg.output_dir)
    checkpoint = find_checkpoint(run_dir) if run_dir.exists() else None
    if cfg.resume and checkpoint is None:
        raise DSPError(f"{run_dir}: no checkpoint to resume from; drop --resume to start a new run")
    if not cfg.resume and run_dir.exists() and not is_empty_run_folder(run_dir):
        raise DSPError(f"{run_dir}: run folder exists and is not empty; pass --resume to continue it or choose another --output-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", {"command": "sft", **asdict(cfg)})

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train = load_examples(cfg.data, split=cfg.train_split, input_field=cfg.input_field,
                          target_field=cfg.target_field, config_name=cfg.data_config, limit=cfg.limit,
                          need_target=cfg.labels == "reference")
    train, dev = _split_dev(cfg, train)
    train = train + extra_train
    if cfg.labels != "reference" and labels is None:
        raise DSPError(f"--labels {cfg.labels}: label the inputs first (dsp.train.labels, dsp.train.distill), then pass them in")
    if labels is not None:
        write_jsonl_atomic(run_dir / "labels.jsonl", [{"where": k, "hint": v} for k, v in labels.items()])
        train, dev = [e for e in train if labels.get(e.where)], [e for e in dev if labels.get(e.where)]
        if not train or not dev:
            raise DSPError("no training or dev example has a label: nothing to learn from")
        label = lambda e: labels[e.where]  # noqa: E731
    else:
        label = task.pseudo_label
    train_labels = [label(e) for e in train]
    dev_labels = [label(e) for e in dev]

    device = resolve_device(cfg.device)
    if checkpoint is not None:
        policy = load_policy(str(checkpoint / "policy"), device=device)
        name = cfg.policy
    elif initial_policy is not None:
        policy, name = initial_policy, cfg.policy
    else:
        policy_type, name = resolve_policy_type(cfg.policy_type, cfg.policy)
        if cfg.policy_type == "auto" and cfg.policy is None and policy_type == "extractive" \
                and not task.extractive_hints:
            policy_type, name = "seq2seq", "scratch"  # offline, and the hints are not input words
        policy = new_policy(policy_type, name, train_texts=[e.input for e in train] + train_labels,
                            scratch_size=cfg.scratch_size, max_input_tokens=cfg.max_input_tokens,
                            max_hint_tokens=cfg.max_hint_tokens, separator=task.separator, hint_words=cfg.hint_words,
                            device=device)
    if cfg.freeze_layers:
        if policy.kind != "extractive":
            raise DSPError(f"--freeze-layers applies to extractive policies, not {policy.kind}")
        policy.freeze_lower(cfg.freeze_layers)
    lr = cfg.lr or DEFAULT_LR["scratch" if name == "scratch" else policy.kind]
    policy.train(True)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    groups = policy.param_groups(lr)
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    step = 0
    if checkpoint is not None:
        step = load_trainer_state(checkpoint, optimizer, scheduler)["step"]

    metrics: dict[str, Any] = {}
    started = time.time()
    log = RunLog(run_dir, resume_step=step)  # drops lines past the checkpoint: they are about to be redone
    bar = tqdm(total=total, initial=step, desc="sft", unit="step")
    try:
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            idx = _batch_order(len(train), epoch, cfg.seed)[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
            inputs, hints = [train[i].input for i in idx], [train_labels[i] for i in idx]
            loss = policy.loss(inputs, hints)
            if extra_loss is not None:
                loss = loss + extra_loss(policy, inputs, hints)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(policy.parameters()), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            metrics = {"epoch": epoch, "train/loss": loss.item(), "charts/lr": scheduler.get_last_lr()[0]}
            if step % cfg.eval_every == 0 or step == total:
                metrics.update(evaluate_dev(policy, dev, dev_labels, cfg.batch_size))
            log.write(step, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", **({"dev_f1": f"{metrics['dev/hint_f1']:.3f}"} if "dev/hint_f1" in metrics else {}))
            if step % cfg.save_every == 0 or step == total:
                save_checkpoint(run_dir, policy, optimizer, scheduler, {"step": step})
            if on_step is not None:
                on_step(step)
    finally:
        log.close()
    bar.close()

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
        "seconds": round(time.time() - started, 1),
        "policy_type": policy.kind,
        **{k: v for k, v in metrics.items() if k.startswith("dev/")},
    }
    if policy.kind == "extractive":
        result["hint_words"] = policy.hint_words
    if calibration:
        result["dev/hint_f1_by_hint_words"] = calibration
    write_json_atomic(run_dir / "result.json", result)
    return result
