"""The root command `dsp`: the typer app every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dsp",
    help=(
        "Directional Stimulus Prompting: train a small policy that writes hints for a frozen LLM.\n\n"
        "Without --base-url, dsp starts an embedded Gemma 3 270M (llama.cpp) on loopback: a small "
        "base model for trying the tool offline. Real use points --base-url/--model at a real LLM."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Directional Stimulus Prompting toolkit."""
