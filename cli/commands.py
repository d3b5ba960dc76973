"""Registers every command on the app."""

from __future__ import annotations

import typer

from dsp import __version__
from dsp.cli import demo, distill, eval, hint, report, rl, serve, sft  # noqa: F401  (each module registers its command)
from dsp.cli.root import app


@app.command()
def version() -> None:
    """Print the dsp version.

    Example: dsp version
    """
    typer.echo(__version__)
