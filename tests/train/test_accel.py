"""Data parallelism on accelerate, on 2 CPU processes started by torch's launcher (torchrun).

`accelerate launch --cpu --num_processes 2` starts more than one CPU process only through MPI, so
the tests launch with torchrun, which sets the same variables accelerate reads. Each trainer's
2-process run is compared with a 1-process run (no launcher) on the same global batch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsp.errors import DSPError
from dsp.llm.testserver import TestServer
from dsp.policy import load_policy
from dsp.train.accel import call_share, make_accelerator
from tests.train import dist_worker

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }


def torchrun(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def still_encoder(tmp_path_factory) -> Path:
    """A 2-layer BERT without dropout: dropout masks are drawn per process, so only a dropout-free
    model can match one process to float tolerance (with dropout the processes still agree)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from dsp.policy.extractive import default_encoder_path

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(os.environ.get("DSP_TEST_TOKENIZER") or default_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    path = tmp_path_factory.mktemp("still-encoder")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def start_policy(still_encoder, tmp_path) -> Path:
    from dsp.policy.extractive import ExtractivePolicy

    torch.manual_seed(0)
    path = tmp_path / "start"
    ExtractivePolicy.from_encoder(str(still_encoder), hint_words=3).save(path)
    return path


def two_and_one(trainer: str, synth_dir: Path, start: Path, tmp_path: Path) -> tuple[list[dict], dict]:
    """(each rank's record of the 2-process run, the record of the 1-process run); both run folders are kept."""
    for name in ("rec2", "rec1"):
        (tmp_path / name).mkdir()
    r = torchrun("-m", "tests.train.dist_worker", trainer, synth_dir, start, tmp_path / "two", tmp_path / "rec2")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    dist_worker.main(trainer, str(synth_dir), str(start), str(tmp_path / "one"), str(tmp_path / "rec1"), world=1)
    ranks = [json.loads((tmp_path / "rec2" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, json.loads((tmp_path / "rec1" / "rank0.json").read_text())


# AdamW's first steps move each weight by about lr x the sign of its gradient, so float noise in a
# near-zero gradient coordinate (the order of a sum over 2 processes) moves that weight by up to lr:
# the weights agree to a fraction of lr, and the logged gradient norms and losses much closer.
WEIGHT_TOL = 1e-3  # the runs use lr 3e-3; their weights move by about 1e-2


def assert_same_policy(a: Path, b: Path) -> None:
    x, y = load_policy(str(a)), load_policy(str(b))
    for (name, p), (_, q) in zip(x.encoder.state_dict().items(), y.encoder.state_dict().items()):
        assert torch.allclose(p, q, atol=WEIGHT_TOL), name
    assert torch.allclose(x.head.weight, y.head.weight, atol=WEIGHT_TOL)


def assert_trained_in_step(ranks: list[dict], steps: int) -> None:
    assert ranks[0]["weights"] == ranks[1]["weights"]  # identical on every rank after every step
    assert len(set(ranks[0]["weights"])) == len(ranks[0]["weights"]) >= steps  # and every step changed them


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_rl_on_two_processes_matches_one_process_on_the_same_batch(
    algo, synth_dir, start_policy, tmp_path, monkeypatch
):
    # PPO also whitens its rewards and advantages over the batch: over both processes' rollouts, as one process would
    monkeypatch.setenv("DSP_WORKER_RL", f"{algo} 2 linear 0")
    ranks, one = two_and_one("rl", synth_dir, start_policy, tmp_path)
    assert_trained_in_step(ranks, 3)
    ids = [ranks[r]["ids"] for r in (0, 1)]
    # 2 iterations x 4 inputs x 2 samples: each rank rolled out 2 inputs per iteration, none twice
    assert len(ids[0]) == len(ids[1]) == 8 and not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == sorted(one["ids"])  # the same inputs as one process, each once
    assert_same_policy(tmp_path / "two", tmp_path / "one")
    rows = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    ones = [json.loads(line) for line in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    keys = {"grpo": ["losses/kl_loss"], "ppo": ["losses/v_loss"]}[algo]
    for a, b in zip(rows[1:], ones[1:]):  # the rewards of the whole batch, gathered; the step's gradient and losses
        for key in ["charts/reward", "losses/grad_norm", "losses/pg_loss", "objective/kl"] + keys:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_a_resumed_two_process_rl_run_equals_an_uninterrupted_one(synth_dir, start_policy, tmp_path, monkeypatch):
    """2 iterations in one go, against 1 iteration and then --resume to 2 (each rank's random state comes back)."""
    runs = {"full": "grpo 2 constant 0", "part": "grpo 1 constant 0", "rest": "grpo 2 constant 1"}
    for name, settings in runs.items():
        (tmp_path / f"rec-{name}").mkdir()
        monkeypatch.setenv("DSP_WORKER_RL", settings)
        folder = tmp_path / ("full" if name == "full" else "resumed")
        r = torchrun("-m", "tests.train.dist_worker", "rl", synth_dir, start_policy, folder, tmp_path / f"rec-{name}")
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    rec = {
        name: [json.loads((tmp_path / f"rec-{name}" / f"rank{r}.json").read_text()) for r in (0, 1)] for name in runs
    }
    for r in (0, 1):  # each rank rolled out the same inputs in the same iterations
        assert rec["part"][r]["ids"] + rec["rest"][r]["ids"] == rec["full"][r]["ids"]
        assert rec["part"][r]["weights"][1] == rec["full"][r]["weights"][1]  # the first iteration, before the kill
    assert_same_policy(tmp_path / "resumed", tmp_path / "full")
    full = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [0, 1, 2]
    assert resumed[2]["samples/hint"] == full[2]["samples/hint"]  # the second iteration's first sampled hint
    for key in ("charts/reward", "losses/grad_norm", "losses/pg_loss"):
        assert resumed[2][key] == pytest.approx(full[2][key], rel=1e-5), key


@pytest.mark.slow
def test_sft_on_two_processes_matches_one_process_on_the_same_batch(synth_dir, still_encoder, tmp_path):
    # 11 inputs in batches of 4: the third step's 3 split 2 / 1 over the processes
    ranks, one = two_and_one("sft", synth_dir, still_encoder, tmp_path)
    assert_trained_in_step(ranks, 5)
    assert_same_policy(tmp_path / "two", tmp_path / "one")
    losses = [
        [json.loads(line)["train/loss"] for line in (tmp_path / d / "log.jsonl").read_text().splitlines()]
        for d in ("two", "one")
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert (tmp_path / "two" / "checkpoint" / "trainer.pt").exists()


@pytest.mark.slow
def test_distill_on_two_processes_matches_one_process_on_the_same_batch(synth_dir, start_policy, tmp_path):
    ranks, one = two_and_one("distill", synth_dir, start_policy, tmp_path)
    assert_trained_in_step(ranks, 4)
    assert_same_policy(tmp_path / "two", tmp_path / "one")
    labels = [sorted((tmp_path / d / "labels.jsonl").read_text().splitlines()) for d in ("two", "one")]
    assert labels[0] == labels[1]  # the teacher's labels, gathered from both processes
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert (
        result["teacher_labelled_inputs"]
        == json.loads((tmp_path / "one" / "result.json").read_text())["teacher_labelled_inputs"]
    )


@pytest.mark.slow
def test_a_global_call_cap_stops_both_processes_with_exit_3(synth_dir, start_policy, tmp_path):
    """The LLM is the test server (real HTTP on loopback); the cap is the whole job's.

    The two `dsp rl` processes get torchrun's variables by hand, so that each one's exit code is seen
    (torchrun itself ends the others at the first non-zero exit and answers 1)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsp = Path(sys.executable).with_name("dsp")
    cap = 13  # shares 7 and 6: the first dev evaluation (2 calls on rank 0) and 2 iterations of 4 rollouts fit
    with TestServer() as server:
        args = [
            dsp,
            "rl",
            "--data",
            synth_dir,
            "--policy",
            start_policy,
            "--output-dir",
            tmp_path / "run",
            "--iterations",
            "20",
            "--batch-size",
            "4",
            "--samples-per-input",
            "2",
            "--minibatch-size",
            "4",
            "--dev-limit",
            "2",
            "--save-every",
            "5",
            "--device",
            "cpu",
            "--llm-temperature",
            "0.5",
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--cache",
            tmp_path / "cache.sqlite",
            "--max-llm-calls",
            cap,
        ]
        procs = [
            subprocess.Popen(
                list(map(str, args)),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={
                    **env(),
                    "RANK": str(r),
                    "LOCAL_RANK": str(r),
                    "WORLD_SIZE": "2",
                    "LOCAL_WORLD_SIZE": "2",
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port),
                },
            )
            for r in (0, 1)
        ]
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        sent = len(server.state.requests)
    assert [p.returncode for p in procs] == [3, 3], outputs
    assert 0 < sent <= cap
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["stopped"] and 0 < result["iterations"] < 20
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == result["iterations"]  # the stop checkpointed how far it got


def test_call_shares_add_up_to_the_cap():
    for cap in (0, 1, 7, 13, 100):
        for world in (1, 2, 3, 8):
            shares = [call_share(cap, r, world) for r in range(world)]
            assert sum(shares) == cap and max(shares) - min(shares) <= 1 and shares == sorted(shares, reverse=True)
    assert call_share(None, 0, 2) is None


def test_fp16_on_a_cpu_is_refused_in_one_line():
    with pytest.raises(DSPError, match="^--mixed-precision fp16 needs a GPU") as e:
        make_accelerator("cpu", "fp16")
    assert "\n" not in str(e.value)
    with pytest.raises(DSPError, match="--mixed-precision must be one of no, bf16, fp16"):
        make_accelerator("cpu", "fp8")
