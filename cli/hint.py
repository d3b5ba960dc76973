"""dsp hint"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli import app
from dsp.cli.common import (ApiKey, BaseUrl, Cache, CacheNamespace, Concurrency, Endpoint, MaxCalls, MaxCost, Model, Prices, Retries,
                            TaskName, Timeout, TokenLimitField, handle_errors, llm_config)
from dsp.errors import DSPError


def _read_input(text: Optional[str], file: Optional[Path]) -> str:
    if text is not None and file is not None:
        raise DSPError("give the input as an argument or with --file, not both")
    if file is not None:
        try:
            text = file.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise DSPError(f"{file}: no such file") from None
        except UnicodeDecodeError as e:
            raise DSPError(f"{file}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    elif text is None or text == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise DSPError("no input: pass TEXT, --file PATH, or pipe text on stdin")
        text = sys.stdin.read()
    if not text.strip():
        raise DSPError("the input is empty")
    return text


@app.command()
@handle_errors
def hint(
    text: Annotated[Optional[str], typer.Argument(help="Input text; '-' or nothing reads stdin.", show_default=False)] = None,
    policy: Annotated[str, typer.Option(help="Policy: a `dsp sft` run folder or a model name.")] = ...,
    file: Annotated[Optional[Path], typer.Option(help="Read the input from this file.")] = None,
    task: TaskName = "cnndm",
    run: Annotated[bool, typer.Option("--run", help="Also run the LLM with the hint and print its output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: {hint, prompt, output}.")] = False,
    shots_data: Annotated[Optional[str], typer.Option(help="With --run: data whose train split gives the few-shot example(s).")] = None,
    shots: Annotated[Optional[int], typer.Option(help="With --run: few-shot examples needs --shots-data; default: the task's, 1, or 0 for reasoning.")] = None,
    base_url: BaseUrl = None, model: Model = None, api_key: ApiKey = None, endpoint: Endpoint = "completions",
    token_limit_field: TokenLimitField = "max_tokens",
    concurrency: Concurrency = 8, max_llm_calls: MaxCalls = None, max_cost: MaxCost = None, prices: Prices = None,
    cache: Cache = None, cache_namespace: CacheNamespace = None, llm_timeout: Timeout = 120.0,
    max_retries: Retries = 6,
) -> None:
    """Write the policy's hint for one input; with --run, also the steered LLM output.

    Example: dsp hint --policy runs/sft --file article.txt --run --json
    """
    from dsp.data import Example, load_examples
    from dsp.llm.client import LLMRequest
    from dsp.llm.session import run_with_llm
    from dsp.policy import load_policy
    from dsp.tasks.config import load_task

    source = _read_input(text, file)
    loaded = load_task(task)
    the_task = loaded.task
    the_hint = load_policy(policy).generate([source])[0]
    result = {"hint": the_hint}
    if run:
        shots = the_task.shots if shots is None else shots
        examples = load_examples(shots_data, split="train", limit=shots, input_field=loaded.data.input_field,
                                 target_field=loaded.data.target_field) if shots_data and shots > 0 else []
        query = Example(id="input", input=source, target="")
        prompt = the_task.prompt(query, the_hint, examples)
        messages = the_task.messages(query, the_hint, examples)  # what a chat endpoint is sent
        llm = llm_config(base_url, model, api_key, endpoint, concurrency, max_llm_calls, max_cost, prices,
                     llm_timeout, max_retries, cache_namespace,
                     token_limit_field)

        async def work(client):
            return await client.complete(LLMRequest(prompt=prompt, messages=messages, max_tokens=the_task.max_tokens,
                                                    stop=the_task.stop))

        answer = run_with_llm(llm, cache, work)
        result.update(prompt=prompt, output=answer.text.strip())
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        typer.echo(f"hint: {the_hint}")
        if run:
            typer.echo(f"output: {result['output']}")
