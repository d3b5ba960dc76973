"""`python -m dsp.llm.xllamacpp_server`: llama.cpp's own HTTP server (through xllamacpp) in a process of its own.

xllamacpp's Linux CPU wheel is prebuilt for a portable x86-64 target (AVX2, no AVX-512, no AMX),
so it runs on every CPU of the machines this project meets, where a source build for the build
machine's CPU (`-march=native`) dies with SIGILL on CPUs whose AMX path faults. It serves
llama.cpp's C++ server: several slots with continuous batching. By default each slot keeps the KV
cache of its last prompt, so a shared prefix is not evaluated again; `--no-cache-prompt` turns that
off, because resuming from a cached prefix splits the rest of the prompt into other batches, and
the float rounding then flips greedy tokens (BENCHMARKS.md: the same prompt, another answer).

It runs in a child process, never inside a dsp command: a native crash then ends this process
only, and the command reports it (see `dsp.llm.local`).
"""

from __future__ import annotations

import argparse
import signal
import threading


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--alias", required=True, help="the model name the server reports")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True, help="CPU threads for generation and prompt processing")
    ap.add_argument("--parallel", type=int, default=2, help="slots: requests decoded together")
    ap.add_argument("--ctx", type=int, default=4096, help="context tokens per slot")
    ap.add_argument(
        "--repeat-penalty",
        type=float,
        default=1.0,
        help="default repetition penalty (1.0: none, llama.cpp's default; the window holds the prompt's "
        "tail too, so a penalty also pushes the answer away from the hint's words)",
    )
    ap.add_argument(
        "--swa-full",
        action="store_true",
        help="full-size sliding-window KV cache, so a slot can reuse a prompt prefix on SWA models (Gemma 3)",
    )
    ap.add_argument(
        "--no-cache-prompt",
        action="store_true",
        help="evaluate every prompt whole (no reuse of a slot's cached prefix): the same prompt then "
        "gives the same greedy answer whatever was sent before it",
    )
    ap.add_argument(
        "--no-repack",
        action="store_true",
        help="keep the weights in the file's layout (llama.cpp's --no-repack); for benchmarks: it did not make "
        "two slots reproducible (BENCHMARKS.md)",
    )
    ap.add_argument(
        "--poll",
        type=int,
        default=50,
        help="how hard idle worker threads poll for work, 0-100 (llama.cpp's default 50 spins; 0 sleeps, "
        "so a CPU job beside the server does not slow it many times over)",
    )
    return ap


def params(args: argparse.Namespace):
    """llama.cpp's server settings from the flags."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.model_alias = {args.alias}
    p.hostnames = ["127.0.0.1"]
    p.port = args.port
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx * args.parallel  # llama.cpp splits n_ctx between the slots
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.cpuparams.poll = args.poll
    p.cpuparams_batch.poll = args.poll
    p.swa_full = args.swa_full
    p.sampling.penalty_repeat = args.repeat_penalty
    if args.no_cache_prompt:
        p.cache_prompt = False  # the default of every request; a request's own "cache_prompt" still wins
        p.cache_ram_mib = 0  # nor a prompt cache in host memory to restore a prefix from
    p.no_extra_bufts = args.no_repack
    p.warmup = False  # the parent checks the server with a real completion instead
    return p


def main(argv: list[str] | None = None) -> None:
    import xllamacpp

    p = params(parser().parse_args(argv))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(p)  # listens on its own threads from here on
    print(f"listening on {server.listening_address}", flush=True)
    while not stop.wait(1.0):
        pass
    del server


if __name__ == "__main__":
    main()
