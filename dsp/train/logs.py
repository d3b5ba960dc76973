"""Run logs: JSON lines (the record), TensorBoard events (for watching), a PNG of the curves and the HTML report
(for reading)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from dsp.io import finite_or_none, json_text, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


class RunLog:
    """Appends one JSON line per step to `log.jsonl` and mirrors numbers to TensorBoard.

    On resume from step S, lines past S (steps done after the last checkpoint, lost with the
    crash and about to be redone) are dropped first, so no step appears twice.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0, tensorboard: bool = True):
        self.path = Path(run_dir) / "log.jsonl"
        if self.path.exists():
            kept = [
                line
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _step(line) is not None and _step(line) <= resume_step
            ]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))
        self._file = self.path.open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:  # an optional extra: the JSON lines hold everything anyway
                log.warning("tensorboardX is not installed: no TensorBoard events (log.jsonl has every metric)")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        self._file.write(json_text(finite_or_none({"step": step, **metrics}), self.path) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(run_dir: Path, keys: tuple[str, ...], out_name: str = "curves.png") -> Path | None:
    """One panel per key present in log.jsonl (e.g. charts/reward, val/rouge_avg); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s", out_name)
        return None
    rows = read_log(Path(run_dir) / "log.jsonl")
    present = [k for k in keys if any(k in r for r in rows)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 3.5), squeeze=False)
    for ax, key in zip(axes[0], present):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(run_dir) / out_name
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


DEV_ARTICLE_WORDS = 400
"""Words of each followed dev article kept in the run folder (what a prompt holds by default)."""


def write_dev_articles(run_dir: Path, examples: list) -> None:
    """The dev articles whose greedy hints the log follows (`dev/hints`), so the report needs nothing outside the
    run folder."""
    from dsp.report.runs import DEV_ARTICLES

    write_json_atomic(
        Path(run_dir) / DEV_ARTICLES,
        [{"id": e.id, "input": " ".join(e.input.split()[:DEV_ARTICLE_WORDS]), "reference": e.target} for e in examples],
    )


def write_run_report(run_dir: Path) -> None:
    """report.html of the run so far; a failure to draw it is a warning, never a lost run."""
    from dsp.report import write_report

    try:
        write_report([run_dir])
    except Exception as e:  # noqa: BLE001  (the checkpoint is written; `dsp report` rebuilds the page)
        log.warning(
            "%s: report.html not written (%s: %s); `dsp report %s` rebuilds it", run_dir, type(e).__name__, e, run_dir
        )
