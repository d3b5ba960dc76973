import json
import math

import pytest
import torch

from dsp.errors import BudgetExceeded, DSPError
from dsp.policy import load_policy
from dsp.policy.extractive import ExtractivePolicy, content_words
from dsp.train import phases, ppo
from dsp.train.configs import RLConfig
from dsp.train.rl import run_rl
from tests.conftest import NAMES, PLACES

TARGET = {w.lower() for w in " ".join(NAMES + PLACES).split()}


class WordListReward:
    """Cheap and deterministic: the share of the hint's words that are names or places."""

    def __init__(self, fail_every: int = 0, budget: int | None = None):
        self.calls, self.fail_every, self.budget, self.missing = 0, fail_every, budget, 0

    def _one(self, hint):
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            self.missing += 1
            return math.nan
        words = content_words(hint)
        return len(words & TARGET) / max(1, len(words))

    async def __call__(self, examples, hints):
        if self.budget is not None and self.calls + len(hints) > self.budget:
            raise BudgetExceeded("call cap of the test reward")
        return [self._one(h) for h in hints]

    async def metric(self, examples, hints):
        return [len(content_words(h) & TARGET) / max(1, len(content_words(h))) for h in hints]


@pytest.fixture
def start_policy(tiny_encoder, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "start"
    ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3).save(path)
    return path


def cfg(synth_dir, out, policy, **kw):
    base = dict(
        data=str(synth_dir),
        output_dir=str(out),
        policy=str(policy),
        iterations=12,
        batch_size=4,
        samples_per_input=4,
        minibatch_size=8,
        lr=3e-3,
        save_every=4,
        dev_limit=8,
        kl_coef=0.01,
    )
    return RLConfig(**(base | kw))


def rewards_logged(out):
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    return [r["charts/reward"] for r in rows if "charts/reward" in r], rows


@pytest.mark.parametrize("algo", ["grpo", "ppo", "best", "remax"])
def test_rl_raises_a_deterministic_reward(algo, synth_dir, start_policy, tmp_path):
    import asyncio

    out = tmp_path / algo
    result = asyncio.run(run_rl(cfg(synth_dir, out, start_policy, algo=algo), WordListReward()))
    rewards, rows = rewards_logged(out)
    assert result["iterations"] == 12 and len(rewards) == 12
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.25, rewards
    assert rows[0]["step"] == 0 and "val/metric" in rows[0] and result["val/metric_last"] > result["val/metric_first"]
    assert (out / "curves.png").stat().st_size > 1000 and any((out / "tb").iterdir())
    assert load_policy(str(out)).kind == "extractive"
    assert {"losses/pg_loss", "losses/approx_kl", "losses/clipfrac", "objective/kl", "objective/entropy"} <= rows[
        -1
    ].keys()
    if algo == "ppo":
        assert "losses/v_loss" in rows[-1]
    if algo == "remax":  # the greedy hints' reward is logged, and it rose too
        greedy = [r["charts/greedy_reward"] for r in rows if "charts/greedy_reward" in r]
        assert len(greedy) == 12 and sum(greedy[-3:]) > sum(greedy[:3]), greedy


def test_first_ratio_is_one_and_kl_to_itself_is_zero(synth_dir, start_policy):
    from dsp.data import load_examples

    policy, reference = load_policy(str(start_policy)), load_policy(str(start_policy))
    policy.train(False)
    reference.train(False)
    examples = load_examples(synth_dir, split="train", limit=3)
    c = cfg(synth_dir, "unused", start_policy, algo="ppo")
    head = torch.nn.Linear(policy.hidden_size, 1)
    ro = phases.rollout(policy, reference, head, examples, 4)
    assert torch.equal(ro.logprob, ro.ref_logprob)  # policy = reference: KL exactly 0
    fresh, _, _ = policy.action_logprobs([e.input for e in ro.examples], ro.actions, ro.mask)
    t = ppo.pg_loss_terms(fresh, ro.logprob, torch.ones_like(fresh), ro.mask.float(), 0.2)
    assert t["ratio"] == 1 and t["approx_kl"] == 0
    # a missing reward gets zero advantage, in both families
    rewards = torch.tensor([0.6, math.nan, 0.1, 0.9] * 3)
    for algo in ("ppo", "grpo"):
        adv, _ = phases.advantages(RLConfig(**{**c.__dict__, "algo": algo}), ro, rewards, 0.05)
        assert (adv[1] == 0).all() and adv[0].abs().sum() > 0


def test_missing_rewards_are_counted_not_zero(synth_dir, start_policy, tmp_path):
    import asyncio

    reward = WordListReward(fail_every=5)
    result = asyncio.run(run_rl(cfg(synth_dir, tmp_path / "r", start_policy, iterations=2), reward))
    _, rows = rewards_logged(tmp_path / "r")
    assert sum(r.get("charts/reward_missing", 0) for r in rows) == reward.missing > 0
    assert result["reward_missing"] == reward.missing


def test_crash_then_resume_matches_uninterrupted_run(synth_dir, start_policy, tmp_path):
    import asyncio

    asyncio.run(
        run_rl(
            cfg(synth_dir, tmp_path / "straight", start_policy, iterations=6, save_every=2, algo="ppo"),
            WordListReward(),
        )
    )

    def crash(it, policy):
        if it == 5:  # after the checkpoint at 4: iteration 5 is lost and redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            run_rl(
                cfg(synth_dir, tmp_path / "crashed", start_policy, iterations=6, save_every=2, algo="ppo"),
                WordListReward(),
                on_iteration=crash,
            )
        )
    result = asyncio.run(
        run_rl(
            cfg(synth_dir, tmp_path / "crashed", start_policy, iterations=6, save_every=2, algo="ppo", resume=True),
            WordListReward(),
        )
    )
    assert result["iterations"] == 6
    a, b = load_policy(str(tmp_path / "straight")), load_policy(str(tmp_path / "crashed"))
    for (n, x), (_, y) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), n
    _, rows = rewards_logged(tmp_path / "crashed")
    assert [r["step"] for r in rows] == list(range(0, 7))  # no iteration lost or logged twice


def test_budget_stop_checkpoints_and_says_how_far(synth_dir, start_policy, tmp_path):
    import asyncio

    result = asyncio.run(
        run_rl(cfg(synth_dir, tmp_path / "b", start_policy, save_every=4), WordListReward(budget=16 * 3))
    )
    assert result["iterations"] == 3 and "after 3 iterations" in result["stopped"]
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["iteration"] == 3


def test_llm_call_count_runs_on_across_a_resume(synth_dir, start_policy, tmp_path):
    import asyncio
    from types import SimpleNamespace

    from dsp.llm.types import Usage

    class CountingReward(WordListReward):  # each hint scored is one request, as the LLM reward's are
        def __init__(self, usage, budget):
            super().__init__(budget=budget)
            self.usage = usage

        def _one(self, hint):
            self.usage.requests += 1
            return super()._one(hint)

    out = tmp_path / "calls"
    for budget, resume in ((16 * 3, False), (16 * 2, True)):  # a new process: its client counts from 0
        client = SimpleNamespace(usage=Usage())
        asyncio.run(
            run_rl(
                cfg(synth_dir, out, start_policy, save_every=4, resume=resume),
                CountingReward(client.usage, budget),
                client=client,
            )
        )
    _, rows = rewards_logged(out)
    assert [r["charts/llm_calls"] for r in rows if "charts/llm_calls" in r] == [16, 32, 48, 64, 80]
    assert json.loads((out / "checkpoint" / "state.json").read_text())["llm_calls"] == 80


def test_config_rules(tmp_path):
    with pytest.raises(DSPError, match="--algo must be one of"):
        RLConfig(data="d", output_dir="o", policy="p", algo="a2c")
    with pytest.raises(DSPError, match="samples-per-input 2 or more"):
        RLConfig(data="d", output_dir="o", policy="p", algo="grpo", samples_per_input=1)
    with pytest.raises(DSPError, match="--policy-temperature must be above 0"):
        RLConfig(data="d", output_dir="o", policy="p", policy_temperature=0.0)


@pytest.fixture
def start_t5(tmp_path):
    from dsp.policy.scratch import build_scratch_policy
    from tests.conftest import synthetic_rows

    rows = synthetic_rows(40)
    torch.manual_seed(0)
    p = build_scratch_policy(
        [r["article"] for r in rows] + [r["highlights"] for r in rows], "tiny", max_input_tokens=48, max_hint_tokens=6
    )
    p.save(tmp_path / "t5")
    return tmp_path / "t5"


class PieceReward(WordListReward):
    """For a T5 whose tokenizer is nearly character-level: the share of the hint's pieces that
    occur in the people's names and not in the filler sentences."""

    def __init__(self, tokenizer):
        super().__init__()
        from tests.conftest import FILLER

        self.tokenizer = tokenizer
        self.target = set(tokenizer.tokenize(" ".join(NAMES))) - set(tokenizer.tokenize(" ".join(FILLER)))

    def _one(self, hint):
        pieces = self.tokenizer.tokenize(hint)
        return sum(p in self.target for p in pieces) / max(1, len(pieces))

    async def metric(self, examples, hints):
        return [self._one(h) for h in hints]


@pytest.mark.parametrize("algo", ["grpo", "ppo", "best", "remax"])
def test_rl_raises_a_deterministic_reward_on_a_tiny_t5(algo, synth_dir, start_t5, tmp_path):
    import asyncio

    out = tmp_path / algo
    reward = PieceReward(load_policy(str(start_t5)).tokenizer)
    result = asyncio.run(run_rl(cfg(synth_dir, out, start_t5, algo=algo, hint_vocab="input", iterations=15), reward))
    rewards, rows = rewards_logged(out)
    assert result["iterations"] == 15
    if algo == "remax":  # it pushes samples above the greedy hint: the greedy hint's reward is what rises first
        rewards = [r["charts/greedy_reward"] for r in rows if "charts/greedy_reward" in r]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.2, rewards
    assert load_policy(str(out)).hint_vocab == "input"


def test_reset_prob_needs_pseudo_labels_and_keeps_prefixes_out_of_the_loss(synth_dir, start_t5, tmp_path):
    import asyncio

    from dsp.data import load_examples
    from dsp.tasks import SummarizationTask

    with pytest.raises(DSPError, match="needs the task's pseudo-labels"):
        asyncio.run(run_rl(cfg(synth_dir, tmp_path / "x", start_t5, reset_prob=0.5), WordListReward()))
    task = SummarizationTask()
    examples = load_examples(synth_dir, split="train", limit=2)
    resets = phases.reset_prefixes(examples, 3, 1.0, task.pseudo_label)
    assert all(
        r is not None and task.pseudo_label(e).startswith(r)
        for e, r in zip([e for e in examples for _ in range(3)], resets)
    )
    policy, reference = load_policy(str(start_t5)), load_policy(str(start_t5))
    policy.train(False)
    ro = phases.rollout(policy, reference, None, examples, 3, resets)
    forced = ro.valid & ~ro.mask
    assert forced[:, 0].all()  # every row starts with forced prefix tokens
    assert (ro.logprob[forced] == 0).all() and (ro.ref_logprob[forced] == 0).all()  # not in the loss, not in the KL
    adv, _ = phases.advantages(cfg(synth_dir, "u", start_t5, samples_per_input=3), ro, torch.rand(6), 0.05)
    assert (adv[forced] == 0).all()
    result = asyncio.run(
        run_rl(
            cfg(synth_dir, tmp_path / "y", start_t5, reset_prob=0.5, iterations=2),
            WordListReward(),
            pseudo_label=task.pseudo_label,
        )
    )
    assert result["iterations"] == 2


def test_cap_reached_in_the_final_dev_evaluation_still_saves_the_last_iteration(synth_dir, start_policy, tmp_path):
    import asyncio

    class CapAtSecondMetric(WordListReward):
        metric_calls = 0

        async def metric(self, examples, hints):
            self.metric_calls += 1
            if self.metric_calls == 2:
                raise BudgetExceeded("stopped before passing --max-llm-calls=9")
            return await super().metric(examples, hints)

    result = asyncio.run(
        run_rl(cfg(synth_dir, tmp_path / "r", start_policy, iterations=3, save_every=2), CapAtSecondMetric())
    )
    assert result["iterations"] == 3 and "during the dev evaluation after iteration 3" in result["stopped"]
    assert json.loads((tmp_path / "r" / "checkpoint" / "state.json").read_text())["iteration"] == 3
    assert load_policy(str(tmp_path / "r")).kind == "extractive" and (tmp_path / "r" / "result.json").exists()


class SlowReference:
    """A reference whose log-probabilities take a while and note how many rewards were asked by then."""

    def __init__(self, inner, reward):
        self.inner, self.reward, self.asked_before_done = inner, reward, None

    def action_logprobs(self, *args):
        import time

        time.sleep(0.3)
        out = self.inner.action_logprobs(*args)
        self.asked_before_done = self.reward.calls
        return out


@pytest.mark.parametrize("overlap", [True, False])
def test_llm_calls_overlap_the_log_probability_work(overlap, synth_dir, start_policy):
    import asyncio

    from dsp.data import load_examples

    examples = load_examples(synth_dir, split="train", limit=3)
    policy = load_policy(str(start_policy))
    policy.train(False)
    reward = WordListReward()
    reference = SlowReference(load_policy(str(start_policy)), reward)
    torch.manual_seed(1)
    ro, rewards, timing = asyncio.run(
        phases.rollout_and_score(policy, reference, None, examples, 4, None, reward, overlap)
    )
    # with overlap the rewards were asked while the reference was still working; without, only after
    assert reference.asked_before_done == (12 if overlap else 0)
    assert rewards.tolist() == pytest.approx(asyncio.run(reward.metric(examples, ro.hints)))  # its own hints scored
    torch.manual_seed(1)
    ro2 = phases.rollout(policy, reference.inner, None, examples, 4)
    assert ro.hints == ro2.hints and torch.equal(ro.logprob, ro2.logprob)  # the same samples either way
    assert set(timing) == {"time/sample", "time/logprobs", "time/llm_wait"}


def test_policy_temperature_reaches_the_rollouts_of_policy_and_reference(synth_dir, start_policy, tmp_path):
    import asyncio

    first = {}
    for temperature in (1.0, 0.05):
        out = tmp_path / f"t{temperature}"
        torch.manual_seed(0)
        asyncio.run(
            run_rl(
                cfg(synth_dir, out, start_policy, iterations=1, eval_every=0, policy_temperature=temperature),
                WordListReward(),
            )
        )
        first[temperature] = rewards_logged(out)[1][1]  # the first iteration's row (row 0 is the dev evaluation)
    assert first[0.05]["objective/entropy"] < first[1.0]["objective/entropy"]  # sharper picks
    assert first[0.05]["objective/kl"] == pytest.approx(0.0, abs=1e-6)  # the reference samples at the same temperature


class ConstantReward:
    """The LLM's part of the reward held fixed: only the shaping term can move the policy."""

    missing = 0

    async def __call__(self, examples, hints):
        return [1.0] * len(hints)

    async def metric(self, examples, hints):
        return [1.0] * len(hints)


def test_hint_hit_shaping_raises_the_hint_hit_rate_under_a_constant_llm_reward(synth_dir, start_policy, tmp_path):
    import asyncio

    from dsp.train.reward import HintHitShaping

    out = tmp_path / "hits"
    reward = HintHitShaping(ConstantReward(), coef=1.0, separator="; ")
    asyncio.run(run_rl(cfg(synth_dir, out, start_policy, algo="grpo", iterations=12), reward))
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["charts/hint_hit_rate"] for r in rows if "charts/hint_hit_rate" in r]
    assert len(rates) == 12
    assert sum(rates[-3:]) / 3 > sum(rates[:3]) / 3 + 0.2, rates
    assert all(r["charts/llm_reward"] == 1.0 for r in rows if "charts/llm_reward" in r)


def test_hint_hit_shaping_keeps_a_missing_reward_missing(synth_dir):
    import asyncio

    from dsp.data import load_examples
    from dsp.train.reward import HintHitShaping

    class Gappy(ConstantReward):
        async def __call__(self, examples, hints):
            return [math.nan] + [0.5] * (len(hints) - 1)

    ex = load_examples(synth_dir, split="train", limit=2)
    who = ex[1].target.split(" opened")[0]
    out = asyncio.run(HintHitShaping(Gappy(), 2.0, "; ")(ex, ["anything", f"{who}; Zanzibar"]))
    assert math.isnan(out[0]) and out[1] == 0.5 + 2.0 * (1.0 - 0.25)
