"""Benchmark scripts, one module each: run one from the repository root as `python -m bench.NAME` (results in
BENCHMARKS.md). They import each other, and the tests' helpers, as modules of the repository."""
