"""`dsp eval` on N synthetic examples against a loopback server with a seeded fault rate, next to a
fault-free run: fault mix, requests, retries, wall time, and whether any result differs or is lost.

Usage: python -m bench.reliability_faults [N=200] [RATE=0.3] [SEED=7]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app
from dsp.llm.testserver import TestServer
from tests.conftest import synthetic_rows


def run(data: Path, out: Path, server: TestServer, cache: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--output-dir",
            str(out),
            "--conditions",
            "none,tfidf,oracle",
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--cache",
            str(cache),
            "--concurrency",
            "32",
            "--llm-timeout",
            "0.5",
            "--max-retries",
            "12",
        ],
    )
    return r.exit_code, time.perf_counter() - t0


def main(n: int = 200, rate: float = 0.3, seed: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(n, 5)))
        (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(4, 6)))
        with TestServer() as clean:
            rc_clean, wall_clean = run(root, root / "clean", clean, root / "c1.sqlite")
        with TestServer(fault_rate=rate, seed=seed, slow_seconds=1.0) as faulty:
            rc, wall = run(root, root / "faulty", faulty, root / "c2.sqlite")
        a = [json.loads(l) for l in (root / "clean" / "examples.jsonl").read_text().splitlines()]
        b = [json.loads(l) for l in (root / "faulty" / "examples.jsonl").read_text().splitlines()]
        summary = json.loads((root / "faulty" / "summary.json").read_text())
        differ = sum(x["outputs"] != y["outputs"] or x["scores"] != y["scores"] for x, y in zip(a, b))
        print(
            json.dumps(
                {
                    "examples": n,
                    "fault_rate": rate,
                    "seed": seed,
                    "exit_codes": [rc_clean, rc],
                    "fault_mix": dict(sorted(faulty.state.injected.items())),
                    "faults_injected": sum(faulty.state.injected.values()),
                    "requests_clean": len(clean.state.requests),
                    "requests_faulty": len(faulty.state.requests),
                    "retries": summary["llm"]["retries"],
                    "failures": summary["llm"]["failures"],
                    "examples_missing": n - summary["complete"],
                    "examples_differing": differ,
                    "wall_clean_s": round(wall_clean, 2),
                    "wall_faulty_s": round(wall, 2),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int, nargs="?", default=200, help="examples")
    ap.add_argument("rate", type=float, nargs="?", default=0.3, help="share of requests that meet a fault")
    ap.add_argument("seed", type=int, nargs="?", default=7, help="seed of the faults")
    args = ap.parse_args()
    main(args.n, args.rate, args.seed)
