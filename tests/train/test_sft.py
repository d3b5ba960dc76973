import json

import pytest
import torch

from dsp.errors import DSPError
from dsp.policy import load_policy
from dsp.train.configs import SFTConfig
from dsp.train.sft import run_sft


def config(data, out, **kw):
    base = dict(
        data=str(data),
        output_dir=str(out),
        policy="scratch",
        max_steps=6,
        batch_size=4,
        lr=3e-3,
        eval_every=3,
        save_every=2,
        dev_limit=4,
        max_input_tokens=48,
        max_hint_tokens=10,
    )
    return SFTConfig(**(base | kw))


def weights(path):
    return load_policy(str(path)).model.state_dict()


def test_sft_run_writes_policy_and_metrics(synth_dir, tmp_path):
    result = run_sft(config(synth_dir, tmp_path / "run"))
    assert result["steps"] == 6 and "dev/hint_f1" in result and "dev/loss" in result
    lines = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == list(range(1, 7))
    assert lines[-1]["train/loss"] < lines[0]["train/loss"]
    assert (tmp_path / "run" / "policy" / "model.safetensors").exists()
    with pytest.raises(DSPError, match="pass --resume"):
        run_sft(config(synth_dir, tmp_path / "run"))


def test_crash_then_resume_matches_uninterrupted_run(synth_dir, tmp_path):
    run_sft(config(synth_dir, tmp_path / "straight"))

    def crash(step, policy):
        if step == 3:  # after the checkpoint at step 2; step 3's update is lost with the crash
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sft(config(synth_dir, tmp_path / "crashed"), on_step=crash)
    assert not (tmp_path / "crashed" / "policy").exists()
    result = run_sft(config(synth_dir, tmp_path / "crashed", resume=True))
    assert result["steps"] == 6
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "crashed")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_resume_without_checkpoint_is_an_error(synth_dir, tmp_path):
    with pytest.raises(DSPError, match="no checkpoint to resume from"):
        run_sft(config(synth_dir, tmp_path / "new", resume=True))


def test_config_rules():
    with pytest.raises(DSPError, match="--batch-size must be positive"):
        SFTConfig(data="x", output_dir="y", batch_size=0)


def test_freeze_layers_keeps_the_lower_encoder_fixed_and_trains_the_rest(synth_dir, tiny_encoder, tmp_path):
    from dsp.policy.extractive import ExtractivePolicy

    start = ExtractivePolicy.from_encoder(str(tiny_encoder))
    before = {k: v.clone() for k, v in start.encoder.state_dict().items()}
    cfg = config(
        synth_dir,
        tmp_path / "frozen",
        policy=str(tiny_encoder),
        policy_type="extractive",
        freeze_layers=1,
        hint_words=3,
        max_input_tokens=64,
    )
    result = run_sft(cfg)
    after = load_policy(str(tmp_path / "frozen")).encoder.state_dict()
    frozen = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in before if k.startswith("encoder.layer.1.") and k.endswith("weight")]
    assert frozen and trained and result["steps"] == 6
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    with pytest.raises(DSPError, match="freeze-layers must be between 0 and the encoder's 2 layers"):
        run_sft(
            config(
                synth_dir,
                tmp_path / "too-many",
                policy=str(tiny_encoder),
                policy_type="extractive",
                freeze_layers=3,
                hint_words=3,
            )
        )
