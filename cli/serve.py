"""dsp serve"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli.common import Device, LLMOptions, TaskName, handle_errors, llm_options, load_shots
from dsp.cli.root import app
from dsp.errors import DSPError

Policy = Annotated[str, typer.Option(help="Policy: a `dsp sft`/`dsp rl` run folder or a model name.")]
Host = Annotated[str, typer.Option(help="Address to listen on; loopback unless you mean otherwise.")]
Port = Annotated[int, typer.Option(help="Port to listen on (0: a free one).")]
MaxBatch = Annotated[
    int,
    typer.Option(help="Most inputs in one policy forward pass. On CPU with long inputs 1 is faster (BENCHMARKS.md)."),
]
BatchWaitMs = Annotated[float, typer.Option(help="How long the first waiting request holds the pass open for others.")]
MaxInputChars = Annotated[int, typer.Option(help="Longer inputs get HTTP 400.")]
Log = Annotated[
    Optional[Path],
    typer.Option(
        help="Append one JSON line per answered request (input, hint, answer, latency, tokens), readable by "
        "`dsp eval/sft --data`."
    ),
]
ShotsData = Annotated[
    Optional[str], typer.Option(help="Data whose train split gives the few-shot example(s) of the task's prompt.")
]
Shots = Annotated[Optional[int], typer.Option(help="Few-shot examples with --shots-data; default: the task's.")]


@app.command()
@handle_errors
@llm_options
def serve(
    policy: Policy = ...,
    task: TaskName = "cnndm",
    host: Host = "127.0.0.1",
    port: Port = 8000,
    max_batch: MaxBatch = 32,
    batch_wait_ms: BatchWaitMs = 2.0,
    max_input_chars: MaxInputChars = 100_000,
    log: Log = None,
    shots_data: ShotsData = None,
    shots: Shots = None,
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

    options = _options(host, max_input_chars)
    loaded = load_task(task)
    options.input_field, options.target_field = loaded.data.input_field, loaded.data.target_field
    options.shots = load_shots(loaded, shots_data, shots)
    llm_config = llm.config()

    def ready(url: str, server) -> None:
        auth = f", bearer token from {TOKEN_ENV}" if options.token else ""
        typer.echo(f"serving {options.model} with hints from {policy} at {url} (Ctrl-C stops{auth})", err=True)

    the_policy = load_policy(policy, device=resolve_device(device))
    run_server(
        the_policy,
        loaded.task,
        llm_config,
        llm.cache,
        options,
        Listen(host, port),
        max_batch=max_batch,
        batch_wait_s=batch_wait_ms / 1000,
        log_path=log,
        ready=ready,
    )


def _options(host: str, max_input_chars: int):
    """The server's options that need no task: its input limit and the bearer token (from the environment only,
    so it is never in `ps` or a shell's history)."""
    from dsp.serve.server import TOKEN_ENV

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
        typer.echo(
            f"warning: listening on {host} with no {TOKEN_ENV}: anyone who reaches it spends your LLM budget", err=True
        )
    return ServeOptions(model=None, token=token, max_input_chars=max_input_chars)
