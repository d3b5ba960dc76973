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


def save_checkpoint(run_dir: Path, policy, optimizer, scheduler, state: dict[str, Any],
                    modules: dict[str, torch.nn.Module] | None = None, rng_ranks: list[dict[str, Any]] | None = None) -> None:
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


def open_run_folder(cfg, acc, command: str) -> tuple[Path, Path | None]:
    """(run folder, its checkpoint or None), after the fresh/resume checks; the main process writes
    config.json ({"command": command, every field of cfg}), which `--config` reads back."""
    run_dir = Path(cfg.output_dir)
    checkpoint = find_checkpoint(run_dir) if run_dir.exists() else None
    if cfg.resume and checkpoint is None:
        raise DSPError(f"{run_dir}: no checkpoint to resume from; drop --resume to start a new run")
    if not cfg.resume and run_dir.exists() and not is_empty_run_folder(run_dir):
        raise DSPError(f"{run_dir}: run folder exists and is not empty; pass --resume to continue it or choose another --output-dir")
    acc.wait_for_everyone()  # every process has checked before the main one writes
    if acc.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", {"command": command, **asdict(cfg)})
    return run_dir, checkpoint


def load_trainer_state(path: Path, optimizer, scheduler, modules: dict[str, torch.nn.Module] | None = None,
                       rank: int = 0, world: int = 1) -> dict[str, Any]:
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
