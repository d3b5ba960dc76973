import math

import torch

from dsp.train import ppo


def test_group_advantages_grpo_and_rloo_with_a_missing_reward():
    r = torch.tensor([1.0, 2.0, 3.0, math.nan, 5.0, 5.0])  # two groups of 3
    grpo = ppo.group_advantages(r, 3, "grpo")
    assert torch.allclose(grpo[:3], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-3)
    assert grpo[3] == 0 and grpo[4] == 0 and grpo[5] == 0  # missing -> 0; equal rewards -> 0
    rloo = ppo.group_advantages(r, 3, "rloo")
    assert torch.allclose(rloo[:3], torch.tensor([1 - 2.5, 2 - 2.0, 3 - 1.5]))
    assert rloo[3] == 0 and rloo[4] == 0


def test_group_advantages_best_rewards_only_each_groups_top():
    r = torch.tensor(
        [1.0, 3.0, 2.0, math.nan, 5.0, 5.0, math.nan, 4.0, 2.0, 7.0, math.nan, math.nan, 1.0, 0.0, 1.0]
    )  # five groups of 3
    best = ppo.group_advantages(r, 3, "best")
    # all scored alike, or one score alone: no winner; a 0/1 reward: every right answer wins
    assert best.tolist() == [0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1]


def test_baseline_advantages_are_the_difference_to_the_greedy_reward_scaled_not_centred():
    r = torch.tensor([3.0, 1.0, 2.0, math.nan, 6.0, 6.0])
    b = torch.tensor([2.0, 2.0, 2.0, 2.0, math.nan, 4.0])  # each row's greedy hint's reward
    adv = ppo.baseline_advantages(r, b)
    diff = torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0, 2.0])
    rms = math.sqrt((1 + 1 + 0 + 4) / 4)  # over the four rows with both rewards
    assert torch.allclose(adv, diff / rms, atol=1e-6)
    assert adv[3] == 0 and adv[4] == 0  # a missing reward or a missing greedy reward: no push either way
    assert adv[0] > 0 > adv[1] and adv[2] == 0  # the sign is better / worse than the greedy hint
    # over two processes' halves, the one scale of the whole batch
    halves = [
        ppo.baseline_advantages(r[i : i + 3], b[i : i + 3], sum_over_processes=lambda t, i=i: _sum_halves(r, b, t, i))
        for i in (0, 3)
    ]
    assert torch.allclose(torch.cat(halves), adv, atol=1e-5)


def _sum_halves(r, b, mine, start):
    """The all-reduce of _moments' three sums, the other half's computed here as its process would."""
    other = slice(3, 6) if start == 0 else slice(0, 3)
    ro, bo = r[other], b[other]
    ok = ~(torch.isnan(ro) | torch.isnan(bo))
    d = torch.where(ok, ro - bo, torch.zeros_like(ro))
    return mine + torch.stack([d.sum(), (d * d).sum(), ok.sum()]).double()


def test_gae_with_lambda_one_is_return_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    values = torch.tensor([[0.2, 0.3, 0.4], [0.1, 0.1, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = ppo.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv[0], torch.tensor([0.8, 0.7, 0.6]))
    assert torch.allclose(adv[1], torch.tensor([0.4, -0.1, 0.0]))  # the padded step takes no part
    assert torch.allclose(ret[0], torch.ones(3))


def test_per_step_rewards_put_the_score_on_the_last_real_step():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    out = ppo.per_step_rewards(torch.tensor([2.0]), torch.tensor([[0.1, 0.2, 0.3]]), mask, kl_coef=1.0)
    assert torch.allclose(out, torch.tensor([[-0.1, 1.8, 0.0]]))
    assert torch.allclose(
        ppo.per_step_rewards(torch.tensor([math.nan]), torch.zeros(1, 3), mask, 1.0), torch.zeros(1, 3)
    )


def test_clipped_surrogate_at_ratio_one_and_beyond_the_clip():
    mask = torch.ones(1, 2)
    lp = torch.zeros(1, 2)
    t = ppo.pg_loss_terms(lp, lp, torch.tensor([[1.0, -1.0]]), mask, clip=0.2)
    assert t["approx_kl"] == 0 and t["clipfrac"] == 0 and t["ratio"] == 1
    t = ppo.pg_loss_terms(torch.full((1, 2), 0.5), lp, torch.tensor([[1.0, 1.0]]), mask, clip=0.2)
    assert torch.isclose(t["pg_loss"], torch.tensor(-1.2)) and t["clipfrac"] == 1  # gain capped at 1 + clip


def test_kl_estimator_and_adaptive_controller():
    assert ppo.kl_k3(torch.tensor([0.3]), torch.tensor([0.3])).item() == 0
    assert ppo.kl_k3(torch.tensor([0.0]), torch.tensor([-1.0])).item() > 0
    ctl = ppo.AdaptiveKL(0.1, target=1.0, horizon=100)
    ctl.update(kl=3.0, n_steps=10)  # KL too high: coefficient grows (error clipped at +0.2)
    assert math.isclose(ctl.value, 0.1 * 1.02)
    ctl.update(kl=0.0, n_steps=10)
    assert ctl.value < 0.1 * 1.02


def test_standardize_keeps_missing_rewards_missing():
    out = ppo.standardize(torch.tensor([10.0, 20.0, math.nan, 30.0]))
    assert torch.isnan(out[2]) and torch.allclose(out[[0, 1, 3]], torch.tensor([-1.0, 0.0, 1.0]))


def test_statistics_shared_over_processes_are_those_of_the_whole_batch():
    """Two processes' halves, their sums added as an all-reduce would, whiten as one process with both halves."""
    torch.manual_seed(0)
    x, mask = torch.randn(6, 5), (torch.rand(6, 5) > 0.3).float()
    rewards = torch.tensor([1.0, 4.0, math.nan, 2.0, 8.0, 3.0])
    halves = [slice(0, 3), slice(3, 6)]

    def summed(f):  # f(part, sum_over_processes) on each half, the sums of both halves shared
        stats = []

        def collect(t):
            stats.append(t)
            return t

        for i, h in enumerate(halves):  # first pass: each half's sums
            f(i, h, collect)
        total = stats[0] + stats[1]
        return torch.cat([f(i, h, lambda t: total) for i, h in enumerate(halves)])

    whole = ppo.whiten(x, mask)
    shared = summed(lambda i, h, s: ppo.whiten(x[h], mask[h], sum_over_processes=s))
    assert torch.allclose(shared, whole, atol=1e-5)
    whole = ppo.standardize(rewards)
    shared = summed(lambda i, h, s: ppo.standardize(rewards[h], s))
    assert torch.isnan(shared[2]) and torch.allclose(shared[~torch.isnan(whole)], whole[~torch.isnan(whole)], atol=1e-5)
    # per-process statistics, what each process computed before, do not agree with the whole batch's
    assert not torch.allclose(
        torch.cat([ppo.standardize(rewards[h]) for h in halves])[[0, 1, 3, 4, 5]], whole[[0, 1, 3, 4, 5]], atol=1e-3
    )
