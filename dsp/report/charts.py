"""The report's charts: matplotlib figures written as SVG to put inline in the page (no image files, no network).

Figures are built without pyplot (no global figure state). Text stays text (`svg.fonttype: none`), and each
chart gets its own hash salt, so the ids matplotlib gives clip paths and markers differ between the charts of one
page; ids nothing refers to are dropped, so none repeats.
"""

from __future__ import annotations

import io
import math
import re
from typing import Sequence

from markupsafe import Markup

UP, DOWN, EVEN = "#2a9d8f", "#e76f51", "#8d99ae"
MAX_LINKED_BARS = 300
"""Per-example charts with more examples than this draw one filled step line instead of bars linked to cards."""


def to_svg(fig, name: str) -> Markup:
    """The figure as an inline <svg> element that scales to its container's width."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"dsp-{name}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, count=1, flags=re.S)
    svg = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", svg, count=1)
    referred = set(re.findall(r'#([^"\)\s]+)', svg))
    svg = re.sub(r' id="([^"]+)"', lambda m: m.group(0) if m.group(1) in referred else "", svg)
    return Markup(svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{name}" ', 1))


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def pair_chart(
    rows: Sequence[tuple[str, float, float]], metric: str, name: str = "paired-differences"
) -> Markup | None:
    """One row per pair: (label, mean difference, half-width of its 95% CI), a line at zero."""
    rows = [r for r in rows if not math.isnan(r[1])]
    if not rows:
        return None
    fig, ax = _figure(7.5, 0.9 + 0.38 * len(rows))
    ys = list(range(len(rows)))[::-1]
    for y, (_, mean, ci) in zip(ys, rows):
        ci = 0.0 if math.isnan(ci) else ci
        color = UP if mean - ci > 0 else DOWN if mean + ci < 0 else EVEN
        ax.errorbar(mean, y, xerr=ci, fmt="o", color=color, capsize=4, markersize=6, linewidth=2)
    ax.axvline(0, color="#444", linewidth=1)
    ax.set_yticks(ys, [r[0] for r in rows])
    ax.set_xlabel(f"paired difference in {metric}, mean and 95% CI")
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    return to_svg(fig, name)


def example_chart(diffs: Sequence[tuple[int, float]], label: str, metric: str, name: str) -> Markup | None:
    """Per-example differences, largest first: (card index, difference). Bars link to their cards."""
    if not diffs:
        return None
    ordered = sorted(diffs, key=lambda d: -d[1])
    values = [d for _, d in ordered]
    fig, ax = _figure(7.5, 2.6)
    xs = list(range(len(values)))
    if len(values) <= MAX_LINKED_BARS:
        bars = ax.bar(xs, values, width=0.8, color=[UP if v > 0 else DOWN if v < 0 else EVEN for v in values])
        for bar, (index, _) in zip(bars, ordered):
            bar.set_url(f"#ex-{index}")
    else:
        for sign, color in ((1, UP), (-1, DOWN)):
            ax.fill_between(xs, values, where=[v * sign > 0 for v in values], step="mid", color=color)
    mean = sum(values) / len(values)
    ax.axhline(0, color="#444", linewidth=1)
    ax.axhline(mean, color="#264653", linewidth=1, linestyle="--", label=f"mean {mean:+.2f}")
    ax.set_title(f"{label}: each example's difference, largest first", fontsize=10)
    ax.set_ylabel(f"Δ {metric}")
    ax.set_xticks([])
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.margins(y=0.06)
    ax.grid(axis="y", alpha=0.3)
    return to_svg(fig, name)


def curves_chart(
    panels: Sequence[tuple[str, Sequence[tuple[int, float]]]],
    stacked: dict[str, Sequence[tuple[int, float]]],
    name: str = "curves",
) -> Markup | None:
    """Small panels of (step, value) curves, and one of the time split (seconds per iteration, stacked)."""
    count = len(panels) + bool(stacked)
    if not count:
        return None
    cols = min(3, count)
    rows = math.ceil(count / cols)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4 * cols, 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, points) in zip(axes, panels):
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o" if len(points) < 30 else None,
            markersize=3,
            color="#264653",
        )
        ax.set_title(title, fontsize=9)
    if stacked:
        ax = axes[len(panels)]
        steps = sorted({s for pts in stacked.values() for s, _ in pts})
        series = [[dict(pts).get(s, 0.0) for s in steps] for pts in stacked.values()]
        ax.stackplot(steps, series, labels=list(stacked), alpha=0.85)
        ax.set_title("seconds per iteration", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", frameon=True, framealpha=0.8)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:count]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[count:]:
        ax.set_visible(False)
    return to_svg(fig, name)
