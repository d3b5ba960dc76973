"""dsp demo: the README's main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dsp.cli.common import Cache, command_line, handle_errors
from dsp.cli.root import app

Data = Annotated[str, typer.Option(help="CNN/DailyMail folder with train.jsonl and dev.jsonl.")]
OutputDir = Annotated[Path, typer.Option(help="Where the SFT run and the eval report go.")]
Limit = Annotated[int, typer.Option(help="Dev articles to evaluate.")]
Epochs = Annotated[int, typer.Option(help="SFT epochs over the 500 training articles.")]
FullSft = Annotated[
    bool,
    typer.Option(
        help="Train like `dsp sft`'s defaults (512 input tokens, every layer trained) instead of the demo's faster "
        "settings (256 tokens, lower 2 layers frozen)."
    ),
]


@app.command()
@handle_errors
def demo(
    ctx: typer.Context,
    data: Data = "../shared/data/cnndm",
    output_dir: OutputDir = Path("runs/demo"),
    limit: Limit = 20,
    epochs: Epochs = 1,
    full_sft: FullSft = False,
    cache: Cache = None,
) -> None:
    """Short SFT + eval on CNN/DailyMail with the embedded LLM; prints the comparison table and the HTML report's path.

    The embedded LLM is Gemma 3 270M (a small base model, for trying dsp offline). The SFT
    policy is the extractive one on the packaged all-MiniLM-L6-v2 encoder (offline no
    pretrained T5 can be fetched, and a T5 from scratch learns nothing in minutes). A re-run
    reuses the trained policy and the LLM cache.

    Example: dsp demo --data ../shared/data/cnndm --limit 20 --output-dir runs/demo
    """
    from dsp.eval import EvalConfig, failure_error, report_markdown, run_eval
    from dsp.llm.session import run_with_llm
    from dsp.llm.types import LLMConfig
    from dsp.policy import load_policy
    from dsp.tasks.config import load_task

    task = load_task("cnndm").task  # the task file's prompt and generation settings, as dsp eval's
    sft_dir = output_dir / "sft"
    if not (sft_dir / "policy").exists():
        _train(data, sft_dir, epochs, full_sft)
    typer.echo(f"== eval: {limit} dev articles x 4 hint sources with the embedded LLM", err=True)
    cfg = EvalConfig(
        data=data,
        output_dir=str(output_dir / "eval"),
        limit=limit,
        shots=task.shots,
        conditions=("none", "tfidf", "policy", "oracle"),
        extra={"policy": str(sft_dir), "command": command_line(ctx)},
    )
    summary = run_with_llm(
        LLMConfig(), cache, lambda client: run_eval(cfg, client, task=task, policy=load_policy(str(sft_dir)))
    )
    typer.echo(report_markdown(summary))
    typer.echo(f"report: {output_dir / 'eval' / 'report.html'}  (open it in a browser)")
    if (failed := failure_error(summary)) is not None:
        raise failed


def _train(data: str, sft_dir: Path, epochs: int, full_sft: bool) -> None:
    """The demo's SFT run (going on from its checkpoint if one was left)."""
    from dsp.train.configs import SFTConfig
    from dsp.train.sft import run_sft
    from dsp.train.state import find_checkpoint

    typer.echo(f"== SFT: extractive policy (all-MiniLM-L6-v2) on {data} -> {sft_dir}", err=True)
    # The demo trains on the first 256 tokens with the encoder's embeddings and lower 2 of 6 layers
    # frozen: several times faster steps, dev hint F1 0.406 against 0.419 (BENCHMARKS.md).
    fast = {} if full_sft else {"max_input_tokens": 256, "freeze_layers": 2}
    run_sft(
        SFTConfig(
            data=data,
            output_dir=str(sft_dir),
            epochs=epochs,
            policy_type="extractive",
            resume=find_checkpoint(sft_dir) is not None,
            **fast,
        )
    )
