"""The seq2seq policy as an RL actor: our decoding loop and the log-probabilities agree."""

import pytest
import torch

from dsp.policy.scratch import build_scratch_policy
from tests.conftest import synthetic_rows


@pytest.fixture(scope="module")
def t5():
    rows = synthetic_rows(30)
    torch.manual_seed(0)
    return build_scratch_policy(
        [r["article"] for r in rows] + [r["highlights"] for r in rows], "tiny", max_input_tokens=48, max_hint_tokens=16
    )


INPUTS = ["Alice Moreau opened a new museum in Lisbon on Monday .", "Bob Tanaka visited Osaka ."]


@pytest.mark.parametrize("vocab,temperature", [("all", 1.0), ("input", 1.0), ("all", 0.5)])
def test_sampled_tokens_logprobs_match_the_sampling_distribution(t5, vocab, temperature):
    t5.hint_vocab, t5.temperature = vocab, temperature
    t5.train(False)
    torch.manual_seed(3)
    actions, valid, generated, hints = t5.sample_actions(INPUTS, 3)
    assert actions.shape[0] == 6 and len(hints) == 6 and torch.equal(valid, generated)
    logp, entropy, state = t5.action_logprobs([x for x in INPUTS for _ in range(3)], actions, valid)
    # Replay the first sampled step by hand: the same distribution the loop sampled from.
    batch = t5.encode_inputs(INPUTS)
    start = torch.full((2, 1), t5.model.config.decoder_start_token_id)
    first = t5.model(**batch, decoder_input_ids=start).logits[:, 0].float()  # (2, V)
    allowed = t5.allowed_tokens(batch["input_ids"])
    if allowed is not None:
        first = first.masked_fill(~allowed, float("-inf"))
    expected = torch.log_softmax(first / temperature, -1).repeat_interleave(3, 0).gather(1, actions[:, :1]).squeeze(1)
    assert torch.allclose(logp[:, 0], expected, atol=1e-4)
    assert torch.isfinite(logp[valid]).all() and (logp[~valid] == 0).all()
    assert state.shape[:2] == actions.shape and (entropy[valid] > 0).all()
    if vocab == "input":
        for row in range(6):
            toks = set(actions[row][valid[row]].tolist()) - {t5.tokenizer.eos_token_id} - set(t5.separator_ids)
            src = set(batch["input_ids"][row // 3].tolist())
            assert toks <= src
    t5.hint_vocab, t5.temperature = "all", 1.0


def test_near_zero_temperature_samples_the_greedy_hint(t5):
    t5.train(False)
    batch = t5.encode_inputs(INPUTS)
    greedy, greedy_valid, _ = t5._decode(batch, 1, greedy=True)
    t5.temperature = 1e-6
    torch.manual_seed(6)
    actions, valid, _, _ = t5.sample_actions(INPUTS, 3)
    t5.temperature = 1.0
    for row in range(6):
        assert torch.equal(actions[row][valid[row]], greedy[row // 3][greedy_valid[row // 3]])


def test_reset_prefix_is_forced_and_left_out_of_the_loss_mask(t5):
    t5.train(False)
    torch.manual_seed(4)
    prefix = "Alice Moreau"
    ids = t5.tokenizer(prefix, add_special_tokens=False)["input_ids"]
    n = len(ids)
    actions, valid, generated, hints = t5.sample_actions(INPUTS[:1], 2, reset_hints=[prefix, None])
    assert actions[0, :n].tolist() == ids and hints[0].startswith("Alice More")
    assert not generated[0, :n].any() and valid[0, :n].all()
    assert generated[1].sum() == valid[1].sum()
