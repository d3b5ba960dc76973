"""Paired difference of two `dsp eval` runs (or two conditions of one) on the examples both scored.

    python bench/paired.py RUN_A/examples.jsonl:policy RUN_B/examples.jsonl:policy [--metric rouge_avg]

Prints mean A, mean B, mean (A - B) with its 95% CI (Student t), and n. Examples are matched by id.
"""

from __future__ import annotations

import argparse
import json

from dsp.metrics import mean_ci


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
    a, b = scores(args.a, args.metric), scores(args.b, args.metric)
    ids = [i for i in a if i in b]
    ma, ca = mean_ci([a[i] for i in ids])
    mb, cb = mean_ci([b[i] for i in ids])
    d, cd = mean_ci([a[i] - b[i] for i in ids])
    print(json.dumps({"n": len(ids), "a": round(ma, 2), "a_ci": round(ca, 2), "b": round(mb, 2), "b_ci": round(cb, 2),
                      "diff": round(d, 2), "diff_ci": round(cd, 2)}))


if __name__ == "__main__":
    main()
