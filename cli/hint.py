"""dsp hint"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli.common import LLMOptions, TaskName, handle_errors, llm_options, load_shots
from dsp.cli.root import app
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


def _hint_file(policy, loaded, input_file, output, input_field, batch_size, llm, cache, shots_data, shots) -> None:
    import asyncio

    from dsp.data import load_examples
    from dsp.hint_file import hint_file
    from dsp.llm.session import run_with_llm
    from dsp.policy import load_policy

    fields = dict(input_field=input_field or loaded.data.input_field, target_field=loaded.data.target_field)
    examples = load_examples(
        input_file, split="dev", need_target=False, id_field=loaded.data.id_field or "id", **fields
    )
    the_policy = load_policy(policy)
    the_shots = load_shots(loaded, shots_data, shots, examples) if llm is not None else ()

    def work(client=None):
        return hint_file(
            the_policy, loaded.task, examples, output, batch_size=batch_size, client=client, shots=the_shots, **fields
        )

    result = run_with_llm(llm, cache, work) if llm is not None else asyncio.run(work())
    typer.echo(
        f"{result.written} rows written to {output}" + (f", {result.skipped} already there" if result.skipped else "")
    )


Text = Annotated[Optional[str], typer.Argument(help="Input text; '-' or nothing reads stdin.", show_default=False)]
Policy = Annotated[str, typer.Option(help="Policy: a `dsp sft` run folder or a model name.")]
File = Annotated[Optional[Path], typer.Option(help="Read the input from this file.")]
Run = Annotated[bool, typer.Option("--run", help="Also run the LLM with the hint and print its output.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON: {hint, prompt, output}.")]
InputFile = Annotated[
    Optional[str],
    typer.Option(
        help="Many inputs: a file --data reads (.jsonl/.json/.csv/.parquet; a folder: its dev split); needs --output.",
        rich_help_panel="Batch",
    ),
]
Output = Annotated[
    Optional[Path],
    typer.Option(
        help="With --input-file: JSONL, one row per input (id, input, hint; prompt and output with --run). "
        "A re-run skips the ids already there.",
        rich_help_panel="Batch",
    ),
]
InputField = Annotated[
    Optional[str],
    typer.Option(help="With --input-file: the input text field (default: the task's).", rich_help_panel="Batch"),
]
BatchSize = Annotated[
    int, typer.Option(help="With --input-file: inputs per policy forward pass.", rich_help_panel="Batch")
]
ShotsData = Annotated[
    Optional[str],
    typer.Option(
        help="With --run: data whose train split gives the few-shot example(s); an input is never its own shot."
    ),
]
Shots = Annotated[
    Optional[int],
    typer.Option(help="With --run: few-shot examples needs --shots-data; default: the task's, 1, or 0 for reasoning."),
]


@app.command()
@handle_errors
@llm_options
def hint(
    text: Text = None,
    policy: Policy = ...,
    file: File = None,
    task: TaskName = "cnndm",
    run: Run = False,
    as_json: AsJson = False,
    input_file: InputFile = None,
    output: Output = None,
    input_field: InputField = None,
    batch_size: BatchSize = 16,
    shots_data: ShotsData = None,
    shots: Shots = None,
    llm: LLMOptions = LLMOptions(),
) -> None:
    """Write the policy's hint for one input; with --run, also the steered LLM output. With --input-file, for
    every input of a file, batched, into --output (resumable).

    Example: dsp hint --policy runs/sft --file article.txt --run --json

    Example: dsp hint --policy runs/sft --input-file ../shared/data/cnndm/dev.jsonl --output hints.jsonl --run
    """
    from dsp.tasks.config import load_task

    loaded = load_task(task)
    if input_file is None and output is None:
        result = _hint_one(policy, loaded, _read_input(text, file), llm if run else None, shots_data, shots)
        typer.echo(json.dumps(result, ensure_ascii=False) if as_json else _as_lines(result))
        return
    if input_file is None or output is None:
        raise DSPError("--input-file and --output go together")
    if text is not None or file is not None:
        raise DSPError("give one input (TEXT or --file) or many (--input-file), not both")
    llm_config = llm.config() if run else None
    _hint_file(policy, loaded, input_file, output, input_field, batch_size, llm_config, llm.cache, shots_data, shots)


def _hint_one(
    policy: str, loaded, source: str, llm: LLMOptions | None, shots_data: str | None, shots: int | None
) -> dict[str, str]:
    """{hint} for one input; with an LLM, also the prompt it was sent and its output."""
    from dsp.data import Example
    from dsp.llm.session import run_with_llm
    from dsp.policy import load_policy

    the_hint = load_policy(policy).generate([source])[0]
    if llm is None:
        return {"hint": the_hint}
    example = Example(id="input", input=source, target="")
    request = loaded.task.request(example, the_hint, load_shots(loaded, shots_data, shots, [example]))

    async def work(client):
        return await client.complete(request)

    answer = run_with_llm(llm.config(), llm.cache, work)
    return {"hint": the_hint, "prompt": request.prompt, "output": answer.text.strip()}


def _as_lines(result: dict[str, str]) -> str:
    return f"hint: {result['hint']}" + (f"\noutput: {result['output']}" if "output" in result else "")
