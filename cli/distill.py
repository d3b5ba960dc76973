"""dsp distill"""

from __future__ import annotations

import json

import typer

from dsp.cli.common import DataSource, InputField, TargetField, TaskName, handle_errors, resolve_task
from dsp.cli.config import settings_command
from dsp.cli.root import app
from dsp.train.configs import DistillConfig


@app.command()
@handle_errors
@settings_command(DistillConfig, "distill", panel="Distillation settings")
def distill(
    settings: dict,
    task: TaskName = "cnndm",
    data: DataSource = None,
    input_field: InputField = None,
    target_field: TargetField = None,
) -> None:
    """Distill a teacher policy into a smaller student (sequence level, plus token level on a shared tokenizer).

    Every setting of DistillConfig is a flag; `--config FILE.toml` (or a run folder's config.json) sets them from a file, and flags given on the command line win.

    Example: dsp distill --teacher runs/rl --data ../shared/data/cnndm --output-dir runs/student --student layers:3
    """
    from dsp.train.distill import run_distill

    _, data_settings, _ = resolve_task(task, data, input_field, target_field, settings)
    cfg = DistillConfig(**settings, **data_settings)
    typer.echo(json.dumps(run_distill(cfg), indent=2))
    typer.echo(f"student saved to {cfg.output_dir}/policy", err=True)
