"""Checkpoints that survive a kill: written to a temporary folder, then swapped in by rename."""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from dsp.errors import DSPError
from dsp.io import is_empty_run_folder, write_json_atomic

CHECKPOINT = "checkpoint"


def save_checkpoint(
    run_dir: Path,
    policy,
    optimizer,
    scheduler,
    state: dict[str, Any],
    modules: dict[str, torch.nn.Module] | None = None,
    rng_ranks: list[dict[str, Any]] | None = None,
) -> None:
    """Policy weights, optimizer, schedule, RNG states, extra `modules` (a value head) and `state` as one unit.

    `rng_ranks`: every process's random state in rank order (`accel.gather_rng_states`) when several
    train; each takes its own back on resume (their dropout masks differ)."""
    run_dir = Path(run_dir)
    for stale in run_dir.glob(f".{CHECKPOINT}.tmp-*"):  # left by a killed process (the run lock says we are alone)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = run_dir / f".{CHECKPOINT}.tmp-{os.getpid()}"
    policy.save(tmp / "policy")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_python": random.getstate(),
            # dropout on a GPU draws from the CUDA generators: without them a resumed run diverges
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "modules": {name: m.state_dict() for name, m in (modules or {}).items()},
            **({"rng_ranks": rng_ranks} if rng_ranks else {}),
        },
        tmp / "trainer.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    final, old = run_dir / CHECKPOINT, run_dir / f"{CHECKPOINT}.old"
    # Two renames: a kill between them leaves checkpoint.old, which load_checkpoint falls back to.
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save_final_policy(run_dir: Path, policy) -> None:
    """The run's final `policy/`, swapped in by rename like checkpoints (a kill leaves the old one or none)."""
    run_dir = Path(run_dir)
    tmp = run_dir / ".policy.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp)
    shutil.rmtree(run_dir / "policy", ignore_errors=True)
    tmp.rename(run_dir / "policy")


def find_checkpoint(run_dir: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        path = Path(run_dir) / name
        if (path / "state.json").exists():
            return path
    return None


# What a resume may change: budgets, how often to evaluate and save, the dev examples' count, where it runs.
# Every other setting shapes the checkpoint (algorithm, policy type, optimizer, schedule) or the data and
# rewards it was trained on, so a resume keeps the run's own (README, "Resuming").
MAY_CHANGE_ON_RESUME = frozenset(
    {
        "resume",
        "output_dir",
        "device",
        "mixed_precision",
        "epochs",
        "max_steps",
        "iterations",
        "eval_every",
        "save_every",
        "dev_limit",
        "overlap",
    }
)


def open_run_folder(cfg, acc, command: str) -> tuple[Path, Path | None]:
    """(run folder, its checkpoint or None), after `check_run_folder`; writes nothing (see `save_run_config`,
    called once the run goes on)."""
    checkpoint = check_run_folder(cfg, command)
    acc.wait_for_everyone()  # every process has checked before the main one writes
    return Path(cfg.output_dir), checkpoint


def check_run_folder(cfg, command: str) -> Path | None:
    """The checkpoint a resume goes on from (None for a new run), after the fresh/resume checks. Cheap: the
    CLI calls it before the LLM is started."""
    run_dir = Path(cfg.output_dir)
    checkpoint = find_checkpoint(run_dir) if run_dir.exists() else None
    if cfg.resume and checkpoint is None:
        raise DSPError(f"{run_dir}: no checkpoint to resume from; drop --resume to start a new run")
    if not cfg.resume and run_dir.exists() and not is_empty_run_folder(run_dir):
        raise DSPError(
            f"{run_dir}: run folder exists and is not empty; pass --resume to continue it or choose another --output-dir"
        )
    if checkpoint is not None:
        check_resume_settings(cfg, run_dir, command)
    return checkpoint


def check_resume_settings(cfg, run_dir: Path, command: str) -> None:
    """Refuse, naming the setting, a resume whose settings differ from the run's own config.json in one that
    may not change (MAY_CHANGE_ON_RESUME lists those that may)."""
    saved = _saved_config(run_dir)
    if saved.get("command", command) != command:
        raise DSPError(
            f"{run_dir}: a `dsp {saved['command']}` run folder; resume it with `dsp {saved['command']} --resume`"
        )
    now = json.loads(json.dumps(asdict(cfg)))  # as config.json holds them: tuples as lists
    for name, value in now.items():
        if name in MAY_CHANGE_ON_RESUME or name not in saved or _same(saved[name], value):
            continue
        flag = f"--{name.replace('_', '-')}"
        raise DSPError(
            f"{run_dir}: {flag} is {value!r} here but {saved[name]!r} in the run; a resume keeps the run's "
            f"{flag}: drop it, or start a new run in another --output-dir"
        )


def _saved_config(run_dir: Path) -> dict[str, Any]:
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # nothing to compare with
    return saved if isinstance(saved, dict) else {}


def _same(saved: Any, now: Any) -> bool:
    """Equal, or two spellings of one existing path (runs/sft, ./runs/sft)."""
    if saved == now:
        return True
    if isinstance(saved, str) and isinstance(now, str) and Path(saved).exists():
        return Path(saved).resolve() == Path(now).resolve()
    return False


def save_run_config(run_dir: Path, acc, command: str, cfg, extra: dict[str, Any] | None = None) -> None:
    """config.json ({"command", every field of cfg, `extra`}), which `--config` reads back; written by the main
    process once the run goes on (after a resume's checkpoint is read), so a refused resume changes nothing."""
    if acc.is_main_process:
        write_json_atomic(Path(run_dir) / "config.json", {"command": command, **asdict(cfg), **(extra or {})})


def load_trainer_state(
    path: Path, optimizer, scheduler, modules: dict[str, torch.nn.Module] | None = None, rank: int = 0, world: int = 1
) -> dict[str, Any]:
    """Restore optimizer, schedule, RNGs and `modules` from a checkpoint folder; return its `state`.

    Process `rank` of `world` takes its own random state when the checkpoint has one per process
    for as many processes; otherwise the main process's (a resume on another process count)."""
    blob = torch.load(path / "trainer.pt", weights_only=True)  # never unpickle arbitrary objects
    for name, m in (modules or {}).items():
        m.load_state_dict(blob["modules"][name])
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    ranks = blob.get("rng_ranks") or []
    if len(ranks) == world > 1:
        rng = ranks[rank]
        rng_torch, rng_cuda, rng_python = rng["torch"], rng["cuda"], rng["python"]
    else:
        rng_torch, rng_cuda, rng_python = blob["rng_torch"], blob.get("rng_cuda"), blob["rng_python"]
    torch.set_rng_state(rng_torch)
    if rng_cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng_cuda)
    random.setstate(_as_random_state(rng_python))
    return json.loads((path / "state.json").read_text(encoding="utf-8"))


def _as_random_state(s):
    # torch.save turns the state's tuples into lists on some versions; random wants tuples.
    return (s[0], tuple(s[1]), s[2])
