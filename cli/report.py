"""dsp report"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli.common import handle_errors
from dsp.cli.root import app


@app.command()
@handle_errors
def report(
    run_dir: Annotated[
        list[Path],
        typer.Argument(
            help="One dsp eval or dsp rl run folder, or several dsp eval folders of one task to compare.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            help="Where the page goes; default: RUN_DIR/report.html for one folder, comparison.html in the current folder for several."
        ),
    ] = None,
) -> None:
    """Build the HTML report of run folders from their files alone (no LLM, no policy); print its path.

    One eval folder: its table, charts of the paired differences, and one card per example (the input and reference with the hint words marked, each hint, answer and score), sortable, filterable and searchable.

    One RL folder: its curves, its settings, and the greedy hints of a few dev articles at each dev evaluation.

    Several eval folders of the same examples: one page comparing them, paired by example id (each condition of a later folder minus the same condition of an earlier one), naming the ids a folder lacks.

    Only the page is written: the run folders are read, never changed. The page needs no network: open it in any browser.

    Example: dsp report runs/eval

    Example: dsp report runs/eval-sft runs/eval-rl --output sft-vs-rl.html
    """
    from dsp.report import write_report

    typer.echo(write_report(run_dir, output))
