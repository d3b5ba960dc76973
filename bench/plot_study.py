"""The PNG and table of an RL study: dev ROUGE-avg of the policy against RL's LLM calls.

    python -m bench.plot_study OUT [--png bench/rl_study.png] [--run "LABEL=NAME" ...] [--probe "LABEL=EVAL_DIR@CALLS" ...]

OUT is a `bench/rl_study.sh` or `bench/rl_budgets.sh` folder: eval-sft/ (0 calls) and, for each run NAME
(default `main`), eval-NAME-N/ (after N calls of RL), each a `dsp eval` of the same dev articles (and
eval-tfidf/, a `--conditions none,tfidf` eval of them, if there). Prints a markdown table (each budget's
policy with its paired 95% CI against SFT) and draws each run's mean with its 95% CI per budget, the
no-hint, TF-IDF and oracle means as lines. Each --probe is another run's eval of the same articles after
CALLS calls: a row and a marker of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from dsp.metrics import mean_ci


def scores(run: Path, condition: str, metric: str = "rouge_avg") -> dict[str, float]:
    out = {}
    for line in (run / "examples.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["scores"].get(condition) is not None:
            out[row["id"]] = row["scores"][condition][metric]
    return out


def paired(pol: dict[str, float], sft: dict[str, float]) -> tuple[float, float, float, float, int]:
    """(mean, its CI, mean difference to SFT, its CI, n) over the articles both scored."""
    ids = [i for i in pol if i in sft]
    m, ci = mean_ci([pol[i] for i in ids])
    d, dci = mean_ci([pol[i] - sft[i] for i in ids])
    return m, ci, d, dci, len(ids)


def iteration_times(log: Path) -> list[dict]:
    """One row per iteration of a run's log.jsonl, in step order (the dev checks' lines left out)."""
    by_step = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "time/llm_wait" in row:
            by_step[row["step"]] = row
    return [by_step[k] for k in sorted(by_step)]


def print_times(out: Path, named: list[tuple[str, str]]) -> None:
    """Median seconds of an iteration's phases per run: waiting for the LLM against the policy's own work."""
    print("\n| run | iterations | LLM calls / iteration | LLM wait (s) | update (s) | sample + log-probs (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, name in named:
        log = out / name / "log.jsonl"
        if not log.exists():
            continue
        rows = iteration_times(log)
        if not rows:  # stopped before its first iteration
            continue
        # charts/llm_calls counts the whole run, resumed legs included (the first step also holds the dev check's)
        calls = [b["charts/llm_calls"] - a["charts/llm_calls"] for a, b in zip(rows, rows[1:])]
        wait, update = (statistics.median(r[k] for r in rows) for k in ("time/llm_wait", "time/update"))
        own = statistics.median(r["time/sample"] + r["time/logprobs"] for r in rows)
        per = statistics.median(calls) if calls else float("nan")
        print(f"| {label} | {len(rows)} | {per:.0f} | {wait:.1f} | {update:.1f} | {own:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--png", type=Path, default=Path("bench/rl_study.png"))
    ap.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="LABEL=EVAL_DIR@CALLS",
        help="another configuration's eval (relative to OUT) after CALLS calls, e.g. 'best of 4=eval-best@500'",
    )
    ap.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="LABEL=NAME",
        help="a run whose evals are OUT/eval-NAME-CALLS, e.g. 'ReMax, groups of 8=remax' (default: the main GRPO run, NAME main)",
    )
    args = ap.parse_args()
    named = []
    for spec in args.run or ["policy (SFT, then the main GRPO run)=main"]:
        label, _, name = spec.rpartition("=")
        if not (label and name):
            ap.error(f"--run {spec!r}: expected LABEL=NAME")
        named.append((label, name))
    probes = []
    for spec in args.probe:
        label, _, rest = spec.partition("=")
        where, _, calls = rest.rpartition("@")
        if not (label and where and calls.isdigit()):
            ap.error(f"--probe {spec!r}: expected LABEL=EVAL_DIR@CALLS")
        probes.append((label, args.out / where, int(calls)))
    sft_eval = args.out / "eval-sft"
    sft = scores(sft_eval, "policy")
    n_sft = len(sft)
    m0, ci0 = mean_ci(list(sft.values()))
    rows = [f"| SFT (start) | {m0:.2f} ± {ci0:.2f} | - | {n_sft} |"]
    curves = []
    for label, name in named:
        runs = {0: sft_eval}
        for d in args.out.glob(f"eval-{name}-*"):
            calls = d.name.removeprefix(f"eval-{name}-")
            if calls.isdigit() and (d / "examples.jsonl").exists():
                runs[int(calls)] = d
        points = []
        for calls in sorted(runs):
            m, ci, d, dci, n = paired(scores(runs[calls], "policy"), sft)
            points.append((calls, m, ci))
            if calls:
                rows.append(f"| {label}, after {calls} calls | {m:.2f} ± {ci:.2f} | {d:+.2f} ± {dci:.2f} | {n} |")
        curves.append((label, points))
    probe_points = []
    for label, where, calls in probes:
        m, ci, d, dci, n = paired(scores(where, "policy"), sft)
        probe_points.append((label, calls, m, ci))
        rows.append(f"| probe: {label}, after {calls} calls | {m:.2f} ± {ci:.2f} | {d:+.2f} ± {dci:.2f} | {n} |")
    lines = {}
    for cond in ("none", "tfidf", "oracle"):  # TF-IDF may come from its own eval of the same articles
        vals = scores(sft_eval, cond) or (
            scores(args.out / "eval-tfidf", cond) if (args.out / "eval-tfidf").exists() else {}
        )
        if vals:
            lines[cond] = mean_ci(list(vals.values()))
    print("| policy | ROUGE-avg (95% CI) | RL − SFT, paired (95% CI) | n |\n|---|---:|---:|---:|")
    print("\n".join(rows))
    for cond, (m, ci) in lines.items():
        print(f"| {cond} hint | {m:.2f} ± {ci:.2f} | | |")
    print_times(args.out, named)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5.5))
    for j, (label, points) in enumerate(curves):  # nudged apart, so the CIs do not hide each other
        ax.errorbar(
            [p[0] + 15 * j for p in points],
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            marker="o",
            capsize=4,
            label=label,
        )
    for j, (label, calls, m, ci) in enumerate(probe_points):  # side by side, so the CIs do not hide each other
        ax.errorbar(
            [calls + 25 * (j + 1)], [m], yerr=[ci], marker="s", linestyle="none", capsize=3, label=f"probe: {label}"
        )
    for cond, style in (("none", ":"), ("tfidf", "-."), ("oracle", "--")):
        if cond in lines:
            ax.axhline(lines[cond][0], linestyle=style, color="grey", label=f"{cond} hint")
    ax.set_xlabel("RL's LLM calls")
    ax.set_ylabel(f"dev ROUGE-avg ({n_sft} CNN/DM dev articles)")
    ax.set_title("dsp rl from an SFT policy, embedded Gemma 3 270M")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)  # below the axes: no bar hidden
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
