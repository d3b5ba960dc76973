"""The API key never reaches the cache, a run folder, a log or an error message; untrusted files run no code."""

import json

import pytest
import torch
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.errors import DSPError
from dsp.llm.testserver import TestServer
from tests.conftest import synthetic_rows

runner = CliRunner()
KEY = "sk-proj-SECRETKEY0123456789abcdefXYZ"


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for split in ("train", "dev"):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(6)))
    return d


def all_bytes(folder):
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_key_is_in_no_file_and_no_output_of_eval_and_rl(data, tiny_encoder, tmp_path):
    from dsp.policy.extractive import ExtractivePolicy

    ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3).save(tmp_path / "p")
    with TestServer() as server:
        llm = ["--base-url", server.base_url, "--model", "m", "--cache", str(tmp_path / "cache.sqlite")]
        r1 = runner.invoke(
            app,
            ["eval", "--data", str(data), "--output-dir", str(tmp_path / "ev"), "--conditions", "none,oracle"] + llm,
            env={"OPENAI_API_KEY": KEY},
        )
        r2 = runner.invoke(
            app,
            [
                "rl",
                "--data",
                str(data),
                "--policy",
                str(tmp_path / "p"),
                "--output-dir",
                str(tmp_path / "rl"),
                "--iterations",
                "1",
                "--batch-size",
                "2",
                "--samples-per-input",
                "2",
                "--api-key",
                KEY,
            ]
            + llm,
        )
        assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
        assert server.state.auth_headers[0] == f"Bearer {KEY}"  # it was sent where it belongs
    for r in (r1, r2):
        assert KEY not in r.output and KEY[-4:] not in r.output
    assert KEY.encode() not in all_bytes(tmp_path)  # cache (and its WAL), eval folder, rl folder, checkpoints


@pytest.mark.parametrize("status", [400, 401, 500])
def test_errors_that_echo_the_key_are_redacted(data, tmp_path, status):
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"}})
    with TestServer() as server:
        server.state.faults = [(status, {}, body)] * 20
        r = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(data),
                "--output-dir",
                str(tmp_path / "ev"),
                "--conditions",
                "none",
                "--limit",
                "1",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--max-retries",
                "1",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
            env={"OPENAI_API_KEY": KEY},
        )
    assert r.exit_code in (2, 4), r.output
    assert f"HTTP {status}" in r.output
    assert KEY not in r.output and KEY[-4:] not in r.output and "***" in r.output
    assert KEY.encode() not in all_bytes(tmp_path)


def test_a_policy_folder_cannot_run_its_own_code(tmp_path, tiny_encoder):
    """`trust_remote_code` stays off: a config that points at code in the folder is refused, not run."""
    import shutil

    from dsp.policy import load_policy

    folder = tmp_path / "evil"
    shutil.copytree(tiny_encoder, folder)
    marker = tmp_path / "pwned"
    (folder / "evil_model.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil_model.EvilModel", "AutoConfig": "evil_model.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "dsp_policy.json").write_text(json.dumps({"kind": "extractive", "hint_words": 3}))
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(1, 32), "bias": torch.zeros(1)}, str(folder / "head.safetensors"))
    try:
        load_policy(str(folder))
    except (DSPError, ValueError, OSError):
        pass
    assert not marker.exists()


def test_a_checkpoint_with_a_pickled_payload_is_refused(tmp_path):
    from dsp.train.state import load_trainer_state

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "ck").mkdir()
    torch.save({"optimizer": Payload()}, tmp_path / "ck" / "trainer.pt")
    (tmp_path / "ck" / "state.json").write_text("{}")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Exception) as err:
        load_trainer_state(tmp_path / "ck", opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0))
    assert "weights_only" in str(err.value) or "Unpickl" in type(err.value).__name__ or "Unsupported" in str(err.value)
    assert not marker.exists()
