"""SFT speed and memory: `dsp`'s SFT loop next to Hugging Face's `Seq2SeqTrainer`, same model,
data, batch size, steps and process settings.

The model is the scratch T5 ("tiny" or "small", built once from a config with a tokenizer trained on
the data and saved, so both load the same weights); the data is the CNN/DM training articles with
their pseudo-label hints; inputs are cut at 512 tokens and hints at 64 in both. Neither evaluates or
saves checkpoints mid-run (dsp saves once at the end, as it always does). Each run is a fresh process:
examples per second is over steps 2..N of the training loop, timed by each loop's own per-step
callback (the first step's warm-up, set-up, imports, and dsp's end-of-run save left out; dsp
tokenizes inside its loop, HF before it: that pre-tokenization is reported beside it), peak memory is the process's peak RSS. Runs alternate dsp / HF.

Seq2SeqTrainer needs `accelerate` (`pip install accelerate`); it is not a dependency of dsp.

Usage: python -m bench.sft_vs_trainer [--data ../shared/data/cnndm] [--size tiny] [--steps 60]
       [--batch-size 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_INPUT, MAX_HINT = 512, 64
WARMUP = 0.05  # dsp sft's default warmup_ratio, given to both


def load_pairs(data: str, limit: int | None = None) -> tuple[list[str], list[str]]:
    from dsp.data import load_examples
    from dsp.tasks.summarization import SummarizationTask

    task = SummarizationTask()
    examples = load_examples(data, split="train", limit=limit, input_field="article", target_field="highlights")
    return [e.input for e in examples], [task.pseudo_label(e) for e in examples]


def build_model(data: str, size: str, out: Path) -> None:
    from dsp.policy.scratch import build_scratch_policy

    inputs, hints = load_pairs(data)
    build_scratch_policy(inputs + hints, size=size, max_input_tokens=MAX_INPUT, max_hint_tokens=MAX_HINT).save(out)


def worker_dsp(model: Path, data: str, steps: int, batch_size: int, out: Path) -> dict:
    from dsp.train.configs import SFTConfig
    from dsp.train.sft import run_sft

    # the run starts from the saved model (the same weights the HF run loads)
    cfg = SFTConfig(
        data=data,
        output_dir=str(out),
        policy=str(model),
        policy_type="seq2seq",
        max_steps=steps,
        batch_size=batch_size,
        lr=1e-3,
        eval_every=10**9,
        save_every=10**9,
        dev_limit=1,
        max_input_tokens=MAX_INPUT,
        max_hint_tokens=MAX_HINT,
    )
    marks: dict[int, float] = {}
    run_sft(cfg, on_step=lambda step, policy: marks.setdefault(step, time.perf_counter()))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {
        "seconds": marks[steps] - marks[1],
        "examples": (steps - 1) * batch_size,
        "last_loss": log[-1]["train/loss"],
    }


def worker_hf(model: Path, data: str, steps: int, batch_size: int, out: Path) -> dict:
    from datasets import Dataset
    from transformers import (
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        T5ForConditionalGeneration,
        TrainerCallback,
    )

    tok = AutoTokenizer.from_pretrained(model)
    net = T5ForConditionalGeneration.from_pretrained(model)
    inputs, hints = load_pairs(data)
    ds = Dataset.from_dict({"input": inputs, "hint": hints})

    def encode(batch):
        enc = tok(batch["input"], truncation=True, max_length=MAX_INPUT)
        enc["labels"] = tok(text_target=batch["hint"], truncation=True, max_length=MAX_HINT)["input_ids"]
        return enc

    t0 = time.perf_counter()
    ds = ds.map(encode, batched=True, remove_columns=["input", "hint"])
    pretokenize = time.perf_counter() - t0
    args = Seq2SeqTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=1e-3,
        weight_decay=0.01,
        warmup_steps=int(WARMUP * steps),
        max_grad_norm=1.0,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    marks: dict[int, float] = {}

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.setdefault(state.global_step, time.perf_counter())

    trainer = Seq2SeqTrainer(
        model=net,
        args=args,
        train_dataset=ds,
        callbacks=[Marks()],
        data_collator=DataCollatorForSeq2Seq(tok, model=net),
    )
    trainer.train()
    loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]  # the last step's, as dsp's log gives
    return {
        "seconds": marks[steps] - marks[1],
        "examples": (steps - 1) * batch_size,
        "last_loss": loss,
        "pretokenize_seconds": pretokenize,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/cnndm")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--worker", choices=["dsp", "hf"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        fn = worker_dsp if args.worker == "dsp" else worker_hf
        r = fn(Path(args.model), args.data, args.steps, args.batch_size, Path(args.out))
        r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return
    tmp = Path(tempfile.mkdtemp(prefix="dsp-sft-bench-"))
    model = tmp / "model"
    build_model(args.data, args.size, model)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
    results: dict[str, list[dict]] = {"dsp": [], "hf": []}
    for run in range(args.runs):
        for kind in ("dsp", "hf"):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                kind,
                "--model",
                str(model),
                "--data",
                args.data,
                "--steps",
                str(args.steps),
                "--batch-size",
                str(args.batch_size),
                "--out",
                str(tmp / f"{kind}-{run}"),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                raise SystemExit(f"{kind} worker failed:\n{p.stderr[-3000:]}")
            results[kind].append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(kind, results[kind][-1], file=sys.stderr)
    rows = {}
    for kind, rs in results.items():
        rows[kind] = {
            "examples_per_s": statistics.median(r["examples"] / r["seconds"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "last_loss": statistics.median(r["last_loss"] for r in rs),
        }
    pre = statistics.median(r["pretokenize_seconds"] for r in results["hf"])
    print(f"| loop | examples/s (median of {args.runs}) | peak RSS MB | final loss | tokenizing before the loop |")
    print("|---|---:|---:|---:|---:|")
    for kind, name in (("dsp", "dsp sft"), ("hf", "HF Seq2SeqTrainer")):
        r = rows[kind]
        print(
            f"| {name} | {r['examples_per_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['last_loss']:.3f} | "
            f"{'-' if kind == 'dsp' else f'{pre:.1f} s'} |"
        )
    print(
        f"dsp / HF speed: {rows['dsp']['examples_per_s'] / rows['hf']['examples_per_s']:.2f}x; "
        f"T5 {args.size}, batch {args.batch_size}, {args.steps} steps, {os.cpu_count()} cores, torch threads "
        f"{__import__('torch').get_num_threads()}"
    )


if __name__ == "__main__":
    main()
