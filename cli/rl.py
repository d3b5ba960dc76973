"""dsp rl"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli.common import (
    DataSource,
    InputField,
    LLMOptions,
    TargetField,
    TaskName,
    handle_errors,
    llm_options,
    resolve_task,
)
from dsp.cli.config import settings_command
from dsp.cli.root import app
from dsp.train.configs import RLConfig

Shots = Annotated[
    Optional[int],
    typer.Option(
        help="Few-shot examples per prompt from the train split, not rolled out; default: the task's, 1, or 0 for "
        "reasoning."
    ),
]


@app.command()
@handle_errors
@settings_command(RLConfig, "rl", panel="RL settings")
@llm_options
def rl(
    settings: dict,
    task: TaskName = "cnndm",
    data: DataSource = None,
    input_field: InputField = None,
    target_field: TargetField = None,
    shots: Shots = None,
    llm: LLMOptions = LLMOptions(),
) -> None:
    """Improve a policy by RL on rewards from the LLM (ROUGE of its output with the policy's hint).

    Every setting of RLConfig is a flag; `--config run.toml` (or a run folder's config.json) sets them from a file, and flags given on the command line win.

    Stops cleanly at --max-llm-calls (exit 3, checkpoint written; --resume goes on, the cap counting each invocation's calls).

    Example: dsp rl --data ../shared/data/cnndm --policy runs/sft --output-dir runs/rl --algo grpo --max-llm-calls 2000

    Example: dsp rl --config runs/rl/config.json --output-dir runs/rl2 --lr 1e-5
    """
    from dsp.errors import BudgetExceeded
    from dsp.llm.session import run_with_llm
    from dsp.train.rl import run_rl_with_llm

    the_task, data_settings, _ = resolve_task(task, data, input_field, target_field, settings)
    cfg = RLConfig(**settings, **data_settings, shots=the_task.shots if shots is None else shots)
    llm_options = llm.config()  # the flags first: a bad one is named before any file is read
    _check_before_the_llm(cfg)
    from dsp.train.accel import share_budget  # torch: only when a run starts

    llm_config = share_budget(llm_options, cfg.device)  # the caps are the job's: each process gets its share
    result = run_with_llm(
        llm_config, llm.cache, lambda client: run_rl_with_llm(cfg, client, the_task, llm_settings=llm.run_settings())
    )
    output_dir = Path(cfg.output_dir)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"policy saved to {output_dir / 'policy'}; curves in {output_dir / 'curves.png'}", err=True)
    typer.echo(f"report: {output_dir / 'report.html'}", err=True)
    if result.get("stopped"):
        raise typer.Exit(BudgetExceeded.exit_code)


def _check_before_the_llm(cfg: RLConfig) -> None:
    """Data, policy and run folder are checked before the LLM is started or reached (their errors are the user's
    to fix, and a refused resume costs no LLM start)."""
    from dsp.policy import check_policy_source
    from dsp.train.state import check_run_folder

    cfg.examples(cfg.train_split, limit=cfg.limit)
    check_policy_source(cfg.policy)
    check_run_folder(cfg, "rl")
