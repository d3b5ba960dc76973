"""HTML reports of run folders: `dsp eval` and `dsp rl` write one, `dsp report` rebuilds or compares them.

One self-contained page that opens anywhere: inline CSS, inline SVG charts (matplotlib), a little plain JavaScript
for sorting and filtering, no request to any network; the tables and cards read with JavaScript off. Jinja2
templates (package data, autoescaping on) hold all the HTML; Python builds only what the page shows
(`eval_page`, `rl_page`) from what the run folders hold (`runs`), with no LLM and no policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dsp.errors import DSPError

REPORT = "report.html"
COMPARISON = "comparison.html"
"""Where a page comparing several eval folders goes by default: the current folder, so no run folder changes."""


def write_report(paths: Sequence[str | Path], output: str | Path | None = None) -> Path:
    """Read the run folders (all checked before anything is written), then write their page and return its path:
    one folder's report.html inside it, several eval folders' comparison to `output` (default comparison.html)."""
    from dsp.io import write_text_atomic
    from dsp.report.runs import run_kind

    paths = [Path(p) for p in paths]
    if not paths:
        raise DSPError("name a run folder to report on")
    kinds = [run_kind(p) for p in paths]
    if len({p.resolve() for p in paths}) < len(paths):
        raise DSPError("a run folder is named twice; name each once")
    if "rl" in kinds and len(paths) > 1:
        raise DSPError(
            f"{paths[kinds.index('rl')]} is a dsp rl folder: an RL run is reported alone (compare eval folders)"
        )
    html = _rl_html(paths[0]) if kinds[0] == "rl" else _eval_html(paths)
    out = Path(output) if output is not None else paths[0] / REPORT if len(paths) == 1 else Path(COMPARISON)
    if out.is_dir():
        out = out / (REPORT if len(paths) == 1 else COMPARISON)
    write_text_atomic(out, html)
    return out


def _eval_html(paths: list[Path]) -> str:
    from dsp.report.eval_page import build_eval_page
    from dsp.report.render import render
    from dsp.report.runs import check_comparable, read_eval_run

    runs = [read_eval_run(p) for p in paths]
    check_comparable(runs)
    return render("eval.html.j2", page=build_eval_page(runs))


def _rl_html(path: Path) -> str:
    from dsp.report.render import render
    from dsp.report.rl_page import build_rl_page
    from dsp.report.runs import read_rl_run

    return render("rl.html.j2", page=build_rl_page(read_rl_run(path)))
