"""dsp sft"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli import app
from dsp.cli.common import (ApiKey, BaseUrl, Cache, CacheNamespace, Concurrency, DataSource, Device, Endpoint, InputField, MaxCalls,
                            MaxCost, Model, Prices, Resume, Retries, Seed, TargetField, TaskName, Timeout, TokenLimitField,
                            handle_errors, llm_config, resolve_task)


@app.command()
@handle_errors
def sft(
    output_dir: Annotated[Path, typer.Option(help="Run folder (config, log.jsonl, checkpoint/, policy/).")],
    task: TaskName = "cnndm",
    data: DataSource = None,
    data_config: Annotated[Optional[str], typer.Option(help="Hub dataset config, e.g. 3.0.0 for abisee/cnn_dailymail.")] = None,
    policy: Annotated[Optional[str], typer.Option(help="Model name/path: an encoder (extractive), a seq2seq LM (e.g. google/flan-t5-base), or 'scratch' (a small T5 from a config). Default: the policy type's default.")] = None,
    policy_type: Annotated[str, typer.Option(help="extractive (encoder picks input words), seq2seq (writes the hint), or auto: seq2seq Flan-T5 when the hub is reachable, else extractive with the packaged all-MiniLM-L6-v2.")] = "auto",
    labels: Annotated[str, typer.Option(help="reference: pseudo-labels from the reference outputs; llm: the LLM writes the hint labels (inputs need no reference).")] = "reference",
    label_template: Annotated[str, typer.Option(help="Labelling prompt for --labels llm (packaged name or .txt path).")] = "labelling/keywords",
    hint_words: Annotated[Optional[int], typer.Option(help="Extractive: words per hint (default: the count with the best dev hint F1).")] = None,
    scratch_size: Annotated[str, typer.Option(help="Size of the scratch T5: tiny or small.")] = "tiny",
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 3,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 8,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default: 5e-5 extractive, 3e-4 seq2seq, 5e-4 scratch).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training examples.")] = None,
    dev_limit: Annotated[int, typer.Option(help="Dev examples for loss and hint F1.")] = 50,
    input_field: InputField = None,
    target_field: TargetField = None,
    max_input_tokens: Annotated[Optional[int], typer.Option(help="Policy input length; longer inputs are cut with a warning (default: 512 extractive, 256 seq2seq).")] = None,
    freeze_layers: Annotated[int, typer.Option(help="Extractive: keep the encoder's embeddings and first N layers frozen (faster steps).")] = 0,
    eval_every: Annotated[int, typer.Option(help="Steps between dev evaluations.")] = 50,
    save_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 50,
    device: Device = "auto",
    seed: Seed = 0,
    resume: Resume = False,
    base_url: BaseUrl = None, model: Model = None, api_key: ApiKey = None, endpoint: Endpoint = "completions",
    token_limit_field: TokenLimitField = "max_tokens",
    concurrency: Concurrency = 8, max_llm_calls: MaxCalls = None, max_cost: MaxCost = None, prices: Prices = None,
    cache: Cache = None, cache_namespace: CacheNamespace = None, llm_timeout: Timeout = 120.0,
    max_retries: Retries = 6,
) -> None:
    """Fine-tune a hint policy on pseudo-label hints (keywords of the reference found in the input).

    Examples:
      dsp sft --data ../shared/data/cnndm --output-dir runs/sft            (offline: extractive MiniLM)
      dsp sft --data ../shared/data/cnndm --output-dir runs/t5 --policy-type seq2seq --policy google/flan-t5-base
      dsp sft --data my_texts.jsonl --input-field text --output-dir runs/llm-labels --labels llm --max-llm-calls 500
    """
    from dsp.train.sft import SFTConfig, run_sft

    the_task, data, input_field, target_field, data_config = resolve_task(task, data, input_field, target_field, data_config)

    cfg = SFTConfig(
        data=data, data_config=data_config, output_dir=str(output_dir), policy=policy, policy_type=policy_type, labels=labels, label_template=label_template, hint_words=hint_words, scratch_size=scratch_size, epochs=epochs,
        max_steps=max_steps, batch_size=batch_size, lr=lr, limit=limit, dev_limit=dev_limit,
        input_field=input_field, target_field=target_field, max_input_tokens=max_input_tokens, freeze_layers=freeze_layers,
        eval_every=eval_every, save_every=save_every, device=device, seed=seed, resume=resume,
    )
    hint_labels = None
    if labels == "llm":  # the LLM labels every input first (cached, capped), then training needs no LLM
        from dsp.llm.session import run_with_llm
        from dsp.train.labels import label_for_sft
        from dsp.train.sft import load_train_dev

        load_train_dev(cfg)  # the data is checked before the LLM is started or reached

        llm = llm_config(base_url, model, api_key, endpoint, concurrency, max_llm_calls, max_cost, prices,
                         llm_timeout, max_retries, cache_namespace,
                     token_limit_field)
        hint_labels = run_with_llm(llm, cache, lambda client: label_for_sft(cfg, client, the_task))
    result = run_sft(cfg, the_task, labels=hint_labels)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"policy saved to {output_dir / 'policy'}", err=True)
