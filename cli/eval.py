"""dsp eval"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli.common import (
    DataSource,
    InputField,
    LLMOptions,
    TargetField,
    TaskName,
    command_line,
    handle_errors,
    llm_options,
    resolve_task,
)
from dsp.cli.config import settings_command
from dsp.cli.root import app
from dsp.eval import EvalConfig

Policy = Annotated[Optional[str], typer.Option(help="Policy: a `dsp sft` run folder or a model name.")]
Conditions = Annotated[str, typer.Option(help="Comma-separated hint sources: none, tfidf, policy, oracle.")]
Shots = Annotated[
    Optional[int],
    typer.Option(help="Few-shot examples per prompt from --shots-split; default: the task's, 1, or 0 for reasoning."),
]


@app.command("eval")
@handle_errors
@settings_command(EvalConfig, "eval", skip={"extra"}, panel="Eval settings")
@llm_options
def eval_(
    settings: dict,
    ctx: typer.Context,
    task: TaskName = "cnndm",
    data: DataSource = None,
    policy: Policy = None,
    conditions: Conditions = "none,policy,oracle",
    shots: Shots = None,
    input_field: InputField = None,
    target_field: TargetField = None,
    llm: LLMOptions = LLMOptions(),
) -> None:
    """Run the LLM with no hint, policy hints and oracle hints on the same examples; print the table and the report's path.

    The run folder gets summary.json, examples.jsonl, report.md and report.html (open it in a browser: every
    example with its hints, answers and scores; `dsp report` rebuilds it).

    Every setting of EvalConfig is a flag; `--config FILE.toml` sets them from a file, and flags given on the command line win.

    Example: dsp eval --data ../shared/data/cnndm --policy runs/sft --output-dir runs/eval --limit 100
    """
    from dsp.errors import BudgetExceeded, DSPError
    from dsp.eval import failure_error, load_eval_data, report_markdown, run_eval
    from dsp.llm.session import run_with_llm
    from dsp.policy import load_policy
    from dsp.policy.choose import resolve_device

    the_task, data_settings, task_ids = resolve_task(task, data, input_field, target_field, settings)
    settings["id_field"] = settings["id_field"] or task_ids
    # a flag gives "none,policy"; a --config file may give a list
    conds = tuple(
        c.strip() for c in (conditions.split(",") if isinstance(conditions, str) else conditions) if c.strip()
    )
    cfg = EvalConfig(
        **settings,
        **data_settings,
        conditions=conds,
        shots=the_task.shots if shots is None else shots,
        extra={"policy": policy, "task": the_task.name, "command": command_line(ctx)},
    )
    output_dir = cfg.output_dir
    llm_config = llm.config()
    # Task, data and policy are checked before the LLM is started or reached (their errors are the user's to fix).
    eval_data = load_eval_data(cfg)
    if "policy" in conds and not policy:
        raise DSPError("--conditions includes 'policy' but no --policy was given")
    hint_policy = load_policy(policy, device=resolve_device("auto")) if policy and "policy" in conds else None
    summary = run_with_llm(
        llm_config, llm.cache, lambda client: run_eval(cfg, client, the_task, policy=hint_policy, data=eval_data)
    )
    typer.echo(report_markdown(summary))
    typer.echo(f"wrote {output_dir}/report.md, summary.json, examples.jsonl", err=True)
    typer.echo(f"report: {Path(output_dir) / 'report.html'}")
    if (failed := failure_error(summary)) is not None:
        raise failed  # exit 4, after the report: a re-run asks again only for the failed calls
    if summary.get("stopped"):
        raise typer.Exit(BudgetExceeded.exit_code)
