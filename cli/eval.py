"""dsp eval"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli import app
from dsp.cli.common import (DataSource, InputField, LLMOptions, TargetField, TaskName, handle_errors, llm_options,
                            resolve_task)


@app.command("eval")
@handle_errors
@llm_options
def eval_(
    output_dir: Annotated[Path, typer.Option(help="Where examples.jsonl, summary.json and report.md go.")],
    task: TaskName = "cnndm",
    data: DataSource = None,
    data_config: Annotated[Optional[str], typer.Option(help="Hub dataset config, e.g. 3.0.0 for abisee/cnn_dailymail.")] = None,
    policy: Annotated[Optional[str], typer.Option(help="Policy: a `dsp sft` run folder or a model name.")] = None,
    conditions: Annotated[str, typer.Option(help="Comma-separated hint sources: none, tfidf, policy, oracle.")] = "none,policy,oracle",
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "dev",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N examples.")] = None,
    shots: Annotated[Optional[int], typer.Option(help="Few-shot examples per prompt from the train split; default: the task's, 1, or 0 for reasoning.")] = None,
    input_field: InputField = None,
    target_field: TargetField = None,
    llm: LLMOptions = LLMOptions(),
) -> None:
    """Run the LLM with no hint, policy hints and oracle hints on the same examples; print the table.

    Example: dsp eval --data ../shared/data/cnndm --policy runs/sft --output-dir runs/eval --limit 100
    """
    from dsp.eval import EvalConfig, failure_error, load_eval_data, report_markdown, run_eval
    from dsp.errors import BudgetExceeded, DSPError
    from dsp.llm.session import run_with_llm
    from dsp.policy import load_policy
    from dsp.policy.choose import resolve_device

    the_task, data, input_field, target_field, data_config = resolve_task(task, data, input_field, target_field, data_config)
    conds = tuple(c.strip() for c in conditions.split(",") if c.strip())
    cfg = EvalConfig(data=data, data_config=data_config, output_dir=str(output_dir), split=split, conditions=conds, limit=limit,
                     shots=the_task.shots if shots is None else shots,
                     input_field=input_field, target_field=target_field, extra={"policy": policy, "task": the_task.name})
    llm_config = llm.config()
    # Task, data and policy are checked before the LLM is started or reached (their errors are the user's to fix).
    eval_data = load_eval_data(cfg)
    if "policy" in conds and not policy:
        raise DSPError("--conditions includes 'policy' but no --policy was given")
    hint_policy = load_policy(policy, device=resolve_device("auto")) if policy and "policy" in conds else None
    summary = run_with_llm(llm_config, llm.cache, lambda client: run_eval(cfg, client, the_task, policy=hint_policy, data=eval_data))
    typer.echo(report_markdown(summary))
    typer.echo(f"wrote {output_dir}/report.md, summary.json, examples.jsonl", err=True)
    if (failed := failure_error(summary)) is not None:
        raise failed  # exit 4, after the report: a re-run asks again only for the failed calls
    if summary.get("stopped"):
        raise typer.Exit(BudgetExceeded.exit_code)
