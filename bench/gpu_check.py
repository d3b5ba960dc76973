"""The trainers on a CUDA GPU: SFT and RL (GRPO, PPO; extractive and seq2seq) on tiny models,
with the learning checks of the CPU tests, and the SFT step time of a MiniLM-sized encoder on
the GPU next to the CPU of the same machine.

Usage (on a machine with a GPU, from the repository root):
    python -m bench.gpu_check TOKENIZER_DIR [DEVICE [accelerate]]
DEVICE: cuda by default, cpu for a dry run; `accelerate` runs only the two-process launch check.
TOKENIZER_DIR holds the all-MiniLM-L6-v2 tokenizer files and config.json (no weights needed).
Prints one JSON object; exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from dsp.data import load_examples
from dsp.metrics import hint_f1
from dsp.policy import load_policy
from dsp.policy.extractive import ExtractivePolicy
from dsp.tasks import SummarizationTask
from dsp.train.configs import RLConfig, SFTConfig
from dsp.train.rl import run_rl
from dsp.train.sft import run_sft
from tests.conftest import synthetic_rows
from tests.train.test_rl import PieceReward, WordListReward


def write_data(root: Path) -> Path:
    d = root / "synth"
    d.mkdir()
    for split, n, seed in (("train", 40, 0), ("dev", 8, 1)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(n, seed)))
    return d


def tiny_encoder(root: Path, tok_dir: str) -> Path:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    path = root / "enc"
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def rewards(run: Path) -> list[float]:
    rows = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    return [r["charts/reward"] for r in rows if "charts/reward" in r]


def sft_step_seconds(tok_dir: str, device: str, steps: int = 5) -> float:
    """Median seconds of one SFT step (8 inputs x 512 tokens) of a MiniLM-sized encoder, random weights."""
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    encoder = BertModel(BertConfig.from_pretrained(tok_dir))
    policy = ExtractivePolicy(encoder, tok, device=device)
    text = " ".join(r["article"] for r in synthetic_rows(60))
    inputs, hints = [text] * 8, ["Lisbon; Alice Moreau; museum"] * 8
    opt = torch.optim.AdamW(list(policy.parameters()), lr=1e-5)
    times = []
    for _ in range(steps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = policy.loss(inputs, hints)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])  # the first step warms up
    return times[len(times) // 2]


def accelerate_check(root: Path, data: Path, start: Path, device: str) -> dict:
    """`accelerate launch` with two processes (sharing the one GPU over gloo): same weights, inputs split."""
    repo = Path(__file__).resolve().parents[1]
    record = root / "record"
    record.mkdir()
    # accelerate puts process r on cuda:r (NCCL refuses two processes on one GPU), and `--cpu` starts one
    # process without MPI: with fewer than two GPUs the check runs torchrun's launcher on the CPU.
    two_gpus = device != "cpu" and torch.cuda.device_count() >= 2
    launcher = (
        [
            "accelerate",
            "launch",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--multi_gpu",
        ]
        if two_gpus
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    )
    cmd = [*launcher, "-m", "tests.train.dist_worker", "rl", str(data), str(start), str(root / "acc"), str(record)]
    env = {
        **os.environ,
        "PYTHONPATH": f"{repo}:{os.environ.get('PYTHONPATH', '')}",
        "DSP_WORKER_DEVICE": device if two_gpus else "cpu",
    }
    p = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return {"ok": False, "returncode": p.returncode, "log": (p.stdout + p.stderr)[-2000:]}
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    same = ranks[0]["weights"] == ranks[1]["weights"]
    disjoint = not set(ranks[0]["ids"]) & set(ranks[1]["ids"])
    return {
        "ok": same and disjoint and ranks[0]["weights"][0] != ranks[0]["weights"][-1],
        "identical_weights_every_step": same,
        "inputs_split": disjoint,
    }


def main(tok_dir: str, device: str = "cuda", only: str = "") -> int:
    assert device == "cpu" or torch.cuda.is_available(), "no CUDA device"
    out: dict = {"device": torch.cuda.get_device_name(0) if device != "cpu" else "cpu", "torch": torch.__version__}
    if only == "accelerate":
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            data, enc = write_data(root), tiny_encoder(root, tok_dir)
            torch.manual_seed(0)
            ExtractivePolicy.from_encoder(str(enc), hint_words=3).save(root / "start")
            out["accelerate_launch_2_processes"] = accelerate_check(root, data, root / "start", device)
        print(json.dumps(out, indent=2))
        return 0 if out["accelerate_launch_2_processes"]["ok"] else 1
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, enc = write_data(root), tiny_encoder(root, tok_dir)
        task = SummarizationTask()
        dev = load_examples(data, split="dev")
        labels = [task.pseudo_label(e) for e in dev]
        torch.manual_seed(0)
        before = ExtractivePolicy.from_encoder(str(enc), hint_words=4, device=device).generate([e.input for e in dev])
        f1_before = sum(hint_f1(h, y) for h, y in zip(before, labels)) / len(dev)
        r = run_sft(
            SFTConfig(
                data=str(data),
                output_dir=str(root / "sft"),
                policy=str(enc),
                policy_type="extractive",
                epochs=6,
                batch_size=4,
                lr=2e-3,
                eval_every=10,
                dev_limit=8,
                device=device,
            )
        )
        out["sft"] = {"dev_hint_f1_before": f1_before, "dev_hint_f1_after": r["dev/hint_f1"], "seconds": r["seconds"]}
        if not r["dev/hint_f1"] > f1_before + 0.3:
            failures.append("sft")

        start = root / "start"
        torch.manual_seed(0)
        ExtractivePolicy.from_encoder(str(enc), hint_words=3).save(start)
        on_gpu = []
        for algo in ("grpo", "ppo"):
            cfg = RLConfig(
                data=str(data),
                output_dir=str(root / algo),
                policy=str(start),
                algo=algo,
                iterations=12,
                batch_size=4,
                samples_per_input=4,
                minibatch_size=8,
                lr=3e-3,
                save_every=4,
                dev_limit=8,
                kl_coef=0.01,
                device=device,
            )
            res = asyncio.run(
                run_rl(
                    cfg,
                    WordListReward(),
                    on_iteration=lambda it, p: on_gpu.append(
                        next(p.parameters()).device.type == torch.device(device).type
                    ),
                )
            )
            rw = rewards(root / algo)
            out[f"rl_extractive_{algo}"] = {
                "first3": sum(rw[:3]) / 3,
                "last3": sum(rw[-3:]) / 3,
                "seconds": res["seconds"],
            }
            if not sum(rw[-3:]) / 3 > sum(rw[:3]) / 3 + 0.25:
                failures.append(f"rl_extractive_{algo}")

        from dsp.policy.scratch import build_scratch_policy

        rows = synthetic_rows(40)
        torch.manual_seed(0)
        build_scratch_policy(
            [r["article"] for r in rows] + [r["highlights"] for r in rows],
            "tiny",
            max_input_tokens=48,
            max_hint_tokens=6,
        ).save(root / "t5")
        for algo in ("grpo", "ppo"):
            cfg = RLConfig(
                data=str(data),
                output_dir=str(root / f"t5-{algo}"),
                policy=str(root / "t5"),
                algo=algo,
                iterations=15,
                batch_size=4,
                samples_per_input=4,
                minibatch_size=8,
                lr=3e-3,
                save_every=5,
                dev_limit=8,
                kl_coef=0.01,
                hint_vocab="input",
                device=device,
            )
            reward = PieceReward(load_policy(str(root / "t5")).tokenizer)
            res = asyncio.run(
                run_rl(
                    cfg,
                    reward,
                    on_iteration=lambda it, p: on_gpu.append(
                        next(p.parameters()).device.type == torch.device(device).type
                    ),
                )
            )
            rw = rewards(root / f"t5-{algo}")
            out[f"rl_t5_{algo}"] = {"first3": sum(rw[:3]) / 3, "last3": sum(rw[-3:]) / 3, "seconds": res["seconds"]}
            if not sum(rw[-3:]) / 3 > sum(rw[:3]) / 3 + 0.2:
                failures.append(f"rl_t5_{algo}")
        out["policy_on_gpu_every_iteration"] = all(on_gpu) and len(on_gpu) == 54
        if not out["policy_on_gpu_every_iteration"]:
            failures.append("device placement")
        if shutil.which("accelerate"):
            out["accelerate_launch_2_processes"] = accelerate_check(root, data, start, device)
            if not out["accelerate_launch_2_processes"].get("ok"):
                failures.append("accelerate launch")

    if device != "cpu":
        gpu = sft_step_seconds(tok_dir, device)
        cpu = sft_step_seconds(tok_dir, "cpu", steps=3)
        out["sft_step_minilm_8x512"] = {
            "cuda_s": gpu,
            "cpu_s": cpu,
            "cpu_threads": torch.get_num_threads(),
            "speedup": cpu / gpu,
        }
    out["failures"] = failures
    print(json.dumps(out, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tok_dir", help="folder of the all-MiniLM-L6-v2 tokenizer files and config.json")
    ap.add_argument("device", nargs="?", default="cuda", help="cuda, or cpu for a dry run")
    ap.add_argument("only", nargs="?", default="", choices=["", "accelerate"], help="accelerate: only the launch check")
    args = ap.parse_args()
    sys.exit(main(args.tok_dir, args.device, args.only))
