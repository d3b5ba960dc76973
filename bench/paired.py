"""Paired difference of two `dsp eval` runs (or two conditions of one) on the examples both scored.

    python -m bench.paired RUN_A/examples.jsonl:policy RUN_B/examples.jsonl:policy [--metric rouge_avg]

Prints mean A, mean B, mean (A - B) with its 95% CI (Student t), and n. Examples are matched by id
(`dsp.metrics.paired_difference`, the numbers `dsp report A B` shows).
"""

from __future__ import annotations

import argparse
import json

from dsp.metrics import paired_difference


def scores(spec: str, metric: str) -> dict[str, float]:
    path, cond = spec.rsplit(":", 1)
    out = {}
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        s = row["scores"].get(cond)
        if s is not None:
            out[row["id"]] = s[metric]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--metric", default="rouge_avg")
    args = ap.parse_args()
    p = paired_difference(scores(args.a, args.metric), scores(args.b, args.metric))
    print(json.dumps({k: v if k == "n" else round(v, 2) for k, v in p.items()}))


if __name__ == "__main__":
    main()
