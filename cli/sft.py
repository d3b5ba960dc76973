"""dsp sft"""

from __future__ import annotations

import json

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
from dsp.train.configs import SFTConfig


@app.command()
@handle_errors
@settings_command(SFTConfig, "sft", panel="SFT settings")
@llm_options
def sft(
    settings: dict,
    task: TaskName = "cnndm",
    data: DataSource = None,
    input_field: InputField = None,
    target_field: TargetField = None,
    llm: LLMOptions = LLMOptions(),
) -> None:
    """Fine-tune a hint policy on pseudo-label hints (keywords of the reference found in the input).

    Every setting of SFTConfig is a flag; `--config FILE.toml` (or a run folder's config.json) sets them from a file, and flags given on the command line win. The LLM options matter only with --labels llm.

    Examples:
      dsp sft --data ../shared/data/cnndm --output-dir runs/sft            (offline: extractive MiniLM)
      dsp sft --data ../shared/data/cnndm --output-dir runs/t5 --policy-type seq2seq --policy google/flan-t5-base
      dsp sft --data my_texts.jsonl --input-field text --output-dir runs/llm-labels --labels llm --max-llm-calls 500
    """
    from dsp.train.sft import run_sft

    the_task, data_settings, _ = resolve_task(task, data, input_field, target_field, settings)
    cfg = SFTConfig(**settings, **data_settings)
    hint_labels = None
    if cfg.labels == "llm":  # the LLM labels every input first (cached, capped), then training needs no LLM
        from dsp.llm.session import run_with_llm
        from dsp.train.labels import label_for_sft
        from dsp.train.sft import load_train_dev
        from dsp.train.state import check_run_folder

        load_train_dev(cfg)  # the data and the run folder are checked before the LLM is started or reached
        check_run_folder(cfg, "sft")

        from dsp.train.accel import share_budget  # torch: only when a run starts

        llm_config = share_budget(llm.config(), cfg.device)  # the caps are the job's: each process gets its share
        hint_labels = run_with_llm(llm_config, llm.cache, lambda client: label_for_sft(cfg, client, the_task))
    result = run_sft(cfg, the_task, labels=hint_labels, llm_settings=llm.run_settings())
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"policy saved to {cfg.output_dir}/policy", err=True)
