"""dsp serve"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli.common import Device, LLMOptions, TaskName, handle_errors, llm_options, load_shots
from dsp.cli.root import app
from dsp.errors import DSPError


@app.command()
@handle_errors
@llm_options
def serve(
    policy: Annotated[str, typer.Option(help="Policy: a `dsp sft`/`dsp rl` run folder or a model name.")] = ...,
    task: TaskName = "cnndm",
    host: Annotated[str, typer.Option(help="Address to listen on; loopback unless you mean otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 8000,
    max_batch: Annotated[int, typer.Option(help="Most inputs in one policy forward pass. On CPU with long inputs 1 is faster (BENCHMARKS.md).")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(help="How long the first waiting request holds the pass open for others.")] = 2.0,
    max_input_chars: Annotated[int, typer.Option(help="Longer inputs get HTTP 400.")] = 100_000,
    log: Annotated[Optional[Path], typer.Option(help="Append one JSON line per answered request (input, hint, answer, latency, tokens), readable by `dsp eval/sft --data`.")] = None,
    shots_data: Annotated[Optional[str], typer.Option(help="Data whose train split gives the few-shot example(s) of the task's prompt.")] = None,
    shots: Annotated[Optional[int], typer.Option(help="Few-shot examples with --shots-data; default: the task's.")] = None,
    device: Device = "auto",
    llm: LLMOptions = LLMOptions(),
) -> None:
    """Serve the policy in front of an LLM as an OpenAI-compatible API: an application gets steered answers by
    changing its base URL. POST /v1/completions and /v1/chat/completions (the prompt, or the last user message,
    is the raw input), GET /v1/models, /health, /metrics. The hint comes back in the X-DSP-Hint header and the
    `dsp` field. With DSP_SERVE_TOKEN set, requests need `Authorization: Bearer <token>`.

    Example: dsp serve --policy runs/rl --task cnndm --base-url http://localhost:8080/v1 --model m --port 8000 --log requests.jsonl

    With a token (clients send it as their API key): DSP_SERVE_TOKEN=s3cret dsp serve --policy runs/rl
    """
    # Before torch loads: idle OpenMP threads otherwise spin between forward passes, taking the cores the
    # event loop and the rest of the machine need (hints 4x slower on a busy 2-core machine: BENCHMARKS.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dsp.policy import load_policy
    from dsp.policy.choose import resolve_device
    from dsp.serve.server import TOKEN_ENV, Listen
    from dsp.serve.server import serve as run_server
    from dsp.tasks.config import load_task

    try:
        from dsp.serve.app import ServeOptions
    except ImportError:
        raise DSPError("dsp serve needs the serve extra (FastAPI, uvicorn): pip install -e '.[serve]'") from None
    if max_input_chars < 1:
        raise DSPError(f"--max-input-chars must be positive, not {max_input_chars}")
    token = os.environ.get(TOKEN_ENV)
    if token is not None and not token.strip():  # set to "" it would turn authentication off without a word
        raise DSPError(f"{TOKEN_ENV} is set but empty: set it to a token, or unset it to serve without one")
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        typer.echo(f"warning: listening on {host} with no {TOKEN_ENV}: anyone who reaches it spends your LLM budget",
                   err=True)
    loaded = load_task(task)
    the_task = loaded.task
    examples = load_shots(loaded, shots_data, shots)
    llm_config = llm.config()
    options = ServeOptions(model=None, token=token, max_input_chars=max_input_chars, input_field=loaded.data.input_field,
                           target_field=loaded.data.target_field, shots=examples)

    def ready(url: str, server) -> None:
        auth = f", bearer token from {TOKEN_ENV}" if token else ""
        typer.echo(f"serving {options.model} with hints from {policy} at {url} (Ctrl-C stops{auth})", err=True)

    run_server(load_policy(policy, device=resolve_device(device)), the_task, llm_config, llm.cache, options, Listen(host, port),
               max_batch=max_batch, batch_wait_s=batch_wait_ms / 1000, log_path=log, ready=ready)
