import itertools
import math

import pytest
import torch

from dsp.data import load_examples
from dsp.errors import DSPError
from dsp.metrics import hint_f1
from dsp.policy import load_policy
from dsp.policy.extractive import ExtractivePolicy, plackett_luce_logprobs, plackett_luce_sample, render_hint
from dsp.tasks import SummarizationTask
from dsp.train.configs import SFTConfig
from dsp.train.sft import run_sft


@pytest.fixture
def policy(tiny_encoder):
    torch.manual_seed(0)
    return ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3)


def test_candidates_are_content_words_and_phrases_follow_the_input(policy):
    text = "The grand museum in Lisbon opened. The museum cost millions in Lisbon."
    batch, (c,) = policy.candidates([text])
    assert c.words == ["grand", "museum", "lisbon", "opened", "cost", "millions"]
    assert c.mask.sum(1).tolist() == [1, 2, 2, 1, 1, 1]  # museum and Lisbon occur twice
    picked = [c.words.index(w) for w in ("lisbon", "museum", "grand", "millions")]
    assert render_hint(text, c, picked, "; ") == "grand museum; Lisbon; millions"


def test_truncated_words_are_not_candidates(tiny_encoder):
    p = ExtractivePolicy.from_encoder(str(tiny_encoder), max_input_tokens=8)
    _, (c,) = p.candidates(["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda"])
    assert "alpha" in c.words and "lambda" not in c.words and len(c.words) <= 6


def test_plackett_luce_logprobs_match_a_recomputation():
    torch.manual_seed(1)
    scores = torch.randn(6)
    picks = plackett_luce_sample(scores, 3)
    logp, entropy = plackett_luce_logprobs(scores, picks)
    # by hand: each pick is a softmax over what is left
    left, expected = list(range(6)), []
    for a in picks.tolist():
        z = sum(math.exp(scores[i]) for i in left)
        expected.append(scores[a].item() - math.log(z))
        left.remove(a)
    assert torch.allclose(logp, torch.tensor(expected), atol=1e-5)
    assert entropy[0] > 0 and torch.isclose(entropy[0], -(scores.softmax(-1) * scores.log_softmax(-1)).sum(), atol=1e-5)
    # and they form a distribution: the ordered pairs of 4 candidates sum to 1
    s4 = torch.randn(4)
    total = sum(plackett_luce_logprobs(s4, torch.tensor(p))[0].sum().exp() for p in itertools.permutations(range(4), 2))
    assert abs(total.item() - 1) < 1e-5


def test_gumbel_top_k_samples_first_picks_by_softmax():
    torch.manual_seed(2)
    scores = torch.tensor([2.0, 1.0, 0.0, -1.0])
    firsts = torch.stack([plackett_luce_sample(scores, 2)[0] for _ in range(8000)])
    freq = torch.bincount(firsts, minlength=4).float() / 8000
    assert torch.allclose(freq, scores.softmax(-1), atol=0.02)


def test_sampled_actions_logprobs_recompute(policy):
    inputs = ["Alice Moreau opened a new museum in Lisbon on Monday.", "Bob Tanaka visited Osaka and Quito in May."]
    actions, mask, generated, hints = policy.sample_actions(inputs, 2)
    assert actions.shape == (4, 3) and mask.all() and generated.all() and len(hints) == 4
    rows = [inputs[0]] * 2 + [inputs[1]] * 2
    logp, ent, state = policy.action_logprobs(rows, actions, mask)
    scores, _, _ = policy.scores(inputs)
    for r in range(4):
        again, _ = plackett_luce_logprobs(scores[r // 2], actions[r])
        assert torch.allclose(logp[r], again, atol=1e-5)
    assert state.shape == (4, 3, 32) and (ent > 0).all()


def test_temperature_divides_the_scores_for_sampling_and_logprobs(policy):
    inputs = ["Alice Moreau opened a new museum in Lisbon on Monday.", "Bob Tanaka visited Osaka and Quito in May."]
    scores, _, _ = policy.scores(inputs)
    greedy = [torch.topk(s, 3).indices for s in scores]
    torch.manual_seed(5)
    policy.temperature = 0.25
    actions, mask, _, _ = policy.sample_actions(inputs, 2)
    logp, _, _ = policy.action_logprobs([inputs[0]] * 2 + [inputs[1]] * 2, actions, mask)
    for r in range(4):
        again, _ = plackett_luce_logprobs(scores[r // 2] / 0.25, actions[r])
        assert torch.allclose(logp[r], again, atol=1e-4)
    # near 0 every sample is the greedy pick order; at 1 the untrained head's near-flat scores are not
    for temperature, all_greedy in ((1e-6, True), (1.0, False)):
        policy.temperature = temperature
        actions, _, _, _ = policy.sample_actions(inputs, 8)
        same = [torch.equal(actions[r], greedy[r // 8]) for r in range(16)]
        assert all(same) if all_greedy else not all(same)
    policy.temperature = 1.0


def test_save_load_round_trip(policy, tmp_path):
    text = "Carla Diaz opened a new museum in Quito on Monday. The museum in Quito cost millions."
    policy.save(tmp_path / "p")
    again = load_policy(str(tmp_path / "p"))
    assert again.kind == "extractive" and again.hint_words == 3
    assert again.generate([text]) == policy.generate([text])
    assert torch.allclose(again.scores([text])[0][0], policy.scores([text])[0][0])


def test_sft_raises_dev_hint_f1_on_known_answers(synth_dir, tiny_encoder, tmp_path):
    task = SummarizationTask()
    dev = load_examples(synth_dir, split="dev")
    labels = [task.pseudo_label(e) for e in dev]
    torch.manual_seed(0)
    before = ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=4).generate([e.input for e in dev])
    f1_before = sum(hint_f1(h, y) for h, y in zip(before, labels)) / len(dev)
    result = run_sft(
        SFTConfig(
            data=str(synth_dir),
            output_dir=str(tmp_path / "run"),
            policy=str(tiny_encoder),
            policy_type="extractive",
            epochs=6,
            batch_size=4,
            lr=2e-3,
            eval_every=10,
            dev_limit=8,
        )
    )
    assert result["policy_type"] == "extractive" and result["hint_words"] in result["dev/hint_f1_by_hint_words"]
    assert result["dev/hint_f1"] > f1_before + 0.3, (f1_before, result)
    log = [l for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == result["steps"]
    # the saved policy uses the calibrated hint length
    assert load_policy(str(tmp_path / "run")).hint_words == result["hint_words"]


def test_sft_crash_then_resume_matches_uninterrupted_run(synth_dir, tiny_encoder, tmp_path):
    def cfg(out, **kw):
        return SFTConfig(
            data=str(synth_dir),
            output_dir=str(out),
            policy=str(tiny_encoder),
            policy_type="extractive",
            max_steps=4,
            batch_size=4,
            lr=1e-3,
            save_every=2,
            eval_every=4,
            dev_limit=4,
            hint_words=3,
            **kw,
        )

    run_sft(cfg(tmp_path / "straight"))

    def crash(step, policy):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sft(cfg(tmp_path / "crashed"), on_step=crash)
    run_sft(cfg(tmp_path / "crashed", resume=True))
    a, b = load_policy(str(tmp_path / "straight")), load_policy(str(tmp_path / "crashed"))
    for (n, x), (_, y) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), n
    assert torch.allclose(a.head.weight, b.head.weight, atol=1e-6)


def test_scratch_is_not_an_extractive_policy(synth_dir, tmp_path):
    with pytest.raises(DSPError, match="policy-type seq2seq"):
        run_sft(
            SFTConfig(data=str(synth_dir), output_dir=str(tmp_path / "r"), policy="scratch", policy_type="extractive")
        )


def test_reset_prefix_is_forced_and_not_generated(policy):
    text = "Alice Moreau opened a grand museum in Lisbon on Monday."
    actions, valid, generated, hints = policy.sample_actions([text], 3, reset_hints=["Lisbon museum", None, "zzz"])
    _, (c,) = policy.candidates([text])
    assert [c.words[i] for i in actions[0, :2].tolist()] == ["lisbon", "museum"]
    assert generated[0].tolist() == [False, False, True] and generated[1].all() and generated[2].all()
    assert "Lisbon" in hints[0] and "museum" in hints[0]
