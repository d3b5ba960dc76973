"""Command registrations (filled in as commands land)."""

from __future__ import annotations

import typer

from dsp import __version__
from dsp.cli import app


@app.command()
def version() -> None:
    """Print the dsp version."""
    typer.echo(__version__)
