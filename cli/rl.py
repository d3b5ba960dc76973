"""dsp rl"""

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
def rl(
    policy: Annotated[str, typer.Option(help="Starting policy (a `dsp sft` run folder); also the frozen KL reference.")],
    output_dir: Annotated[Path, typer.Option(help="Run folder (config, log.jsonl, tb/, checkpoint/, curves.png, policy/).")],
    task: TaskName = "cnndm",
    data: DataSource = None,
    algo: Annotated[str, typer.Option(help="ppo (value head + GAE), grpo (group mean/std baseline) or rloo (leave-one-out).")] = "grpo",
    iterations: Annotated[int, typer.Option(help="Rollout-score-update iterations.")] = 25,
    batch_size: Annotated[int, typer.Option(help="Inputs per iteration.")] = 4,
    samples_per_input: Annotated[int, typer.Option(help="Hints sampled per input (LLM calls per iteration = batch x samples x llm-samples).")] = 4,
    lr: Annotated[float, typer.Option(help="Learning rate (see --lr-schedule).")] = 2e-5,
    lr_schedule: Annotated[str, typer.Option(help="linear: decay to 0 over --iterations; constant: hold it.")] = "linear",
    kl_coef: Annotated[float, typer.Option(help="KL weight to the starting policy.")] = 0.05,
    hint_hit_coef: Annotated[float, typer.Option(help="Paper's reward shaping: + this x (+1 per hint phrase in the reference, -0.25 per phrase not).")] = 0.0,
    kl_target: Annotated[Optional[float], typer.Option(help="Adaptive KL: per-hint KL to track (default: fixed coefficient).")] = None,
    update_epochs: Annotated[int, typer.Option(help="Passes over each iteration's rollouts.")] = 2,
    minibatch_size: Annotated[int, typer.Option(help="Rollouts per gradient step.")] = 8,
    llm_samples: Annotated[int, typer.Option(help="LLM answers per hint, averaged (needs --llm-temperature > 0 above 1).")] = 1,
    llm_temperature: Annotated[float, typer.Option(help="LLM temperature for rewards.")] = 0.0,
    baseline: Annotated[str, typer.Option(help="none, or no_hint: reward minus the input's no-hint score.")] = "none",
    reset_prob: Annotated[float, typer.Option(help="DR-PO dataset reset: share of rollouts started from a random prefix of the pseudo-label hint.")] = 0.0,
    overlap: Annotated[bool, typer.Option(help="Start the LLM calls as soon as hints are sampled, while log-probabilities are taken.")] = True,
    policy_temperature: Annotated[float, typer.Option(help="Policy sampling temperature for rollouts (below 1: nearer the greedy hint).")] = 1.0,
    hint_words: Annotated[Optional[int], typer.Option(help="Extractive: words per hint for rollouts and the trained policy (default: the starting policy's).")] = None,
    hint_vocab: Annotated[Optional[str], typer.Option(help="Seq2seq: 'input' restricts hint tokens to the input's own (plus separator, end).")] = None,
    shots: Annotated[Optional[int], typer.Option(help="Few-shot examples per prompt from the train split, not rolled out; default: the task's, 1, or 0 for reasoning.")] = None,
    eval_every: Annotated[int, typer.Option(help="Iterations between dev evaluations (0: only first and last).")] = 0,
    dev_limit: Annotated[int, typer.Option(help="Dev examples per evaluation.")] = 20,
    save_every: Annotated[int, typer.Option(help="Iterations between checkpoints.")] = 5,
    limit: Annotated[Optional[int], typer.Option(help="Roll out only the first N training inputs.")] = None,
    input_field: InputField = None,
    target_field: TargetField = None,
    device: Device = "auto",
    seed: Seed = 0,
    resume: Resume = False,
    base_url: BaseUrl = None, model: Model = None, api_key: ApiKey = None, endpoint: Endpoint = "completions",
    token_limit_field: TokenLimitField = "max_tokens",
    concurrency: Concurrency = 8, max_llm_calls: MaxCalls = None, max_cost: MaxCost = None, prices: Prices = None,
    cache: Cache = None, cache_namespace: CacheNamespace = None, llm_timeout: Timeout = 120.0,
    max_retries: Retries = 6,
) -> None:
    """Improve a policy by RL on rewards from the LLM (ROUGE of its output with the policy's hint).

    Stops cleanly at --max-llm-calls (exit 3, checkpoint written; --resume with a larger cap continues).

    Example: dsp rl --data ../shared/data/cnndm --policy runs/sft --output-dir runs/rl --algo grpo --max-llm-calls 2000
    """
    from dsp.errors import BudgetExceeded
    from dsp.llm.session import run_with_llm
    from dsp.train.rl import RLConfig, run_rl_with_llm

    the_task, data, input_field, target_field, data_config = resolve_task(task, data, input_field, target_field)
    cfg = RLConfig(
        data=data, data_config=data_config, policy=policy, output_dir=str(output_dir), algo=algo, iterations=iterations, batch_size=batch_size,
        samples_per_input=samples_per_input, lr=lr, lr_schedule=lr_schedule, kl_coef=kl_coef, hint_hit_coef=hint_hit_coef, kl_target=kl_target, update_epochs=update_epochs,
        minibatch_size=minibatch_size, llm_samples=llm_samples, llm_temperature=llm_temperature, baseline=baseline,
        reset_prob=reset_prob, overlap=overlap, hint_vocab=hint_vocab, hint_words=hint_words, policy_temperature=policy_temperature, shots=the_task.shots if shots is None else shots, eval_every=eval_every, dev_limit=dev_limit, save_every=save_every, limit=limit,
        input_field=input_field, target_field=target_field, device=device, seed=seed, resume=resume,
    )
    # Data and policy are checked before the LLM is started or reached (their errors are the user's to fix).
    from dsp.data import load_examples
    from dsp.policy import check_policy_source

    load_examples(cfg.data, split=cfg.train_split, input_field=cfg.input_field, target_field=cfg.target_field,
                  config_name=cfg.data_config, limit=cfg.limit)
    check_policy_source(cfg.policy)
    llm = llm_config(base_url, model, api_key, endpoint, concurrency, max_llm_calls, max_cost, prices,
                     llm_timeout, max_retries, cache_namespace,
                     token_limit_field)
    result = run_with_llm(llm, cache, lambda client: run_rl_with_llm(cfg, client, the_task))
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"policy saved to {output_dir / 'policy'}; curves in {output_dir / 'curves.png'}", err=True)
    if result.get("stopped"):
        raise typer.Exit(BudgetExceeded.exit_code)
