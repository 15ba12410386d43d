"""Statistics of the leaderboard and the gate, on seeded synthetic data with known answers.

Synthetic items: each item has a latent probability q_i ~ Beta(a, a) of being answered right; a
run answers item i right with probability q_i. Two runs of the same quality then agree on most
items (≈ 92% for a = 0.1, as two checkpoints of one model do) and differ by pure noise.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from leaderboard_helpers import make_result

from tokenpo.core.stats import two_level_bootstrap
from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.regress import compare
from tokenpo.leaderboards.stat_rules import drop_test, holm, linearised, paired_se
from tokenpo.leaderboards.table import build_leaderboard

TASK = "synthetic_mc"
RAW = Benchmark("raw", "Synthetic", (TASK,), ("acc,none",), 0.0)  # random 0: normalised = 100 · raw


def _pair(rng: np.random.Generator, n: int, shift: float = 0.0, a: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and candidate 0/1 scores; the candidate's q is moved to q + shift·(1 − q).

    E[q] = 1/2 for Beta(a, a), so the true difference in accuracy is exactly shift / 2.
    """
    q = rng.beta(a, a, n)
    base = (rng.random(n) < q).astype(float)
    cand = (rng.random(n) < q + shift * (1 - q)).astype(float)
    return base, cand


def test_holm_matches_hand_computed_adjustment():
    # sorted p: 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.6]) == [1.0, 1.0]


def test_drop_test_hand_computed():
    test = drop_test(delta=-3.0, se=1.0, max_drop=0.0, alpha=0.05)
    assert test.p_value == pytest.approx(2 * NormalDist().cdf(-3.0))  # 0.0027
    assert (test.low, test.high) == pytest.approx((-3 - 1.959964, -3 + 1.959964), abs=1e-5)
    tolerant = drop_test(delta=-3.0, se=1.0, max_drop=2.0, alpha=0.05)
    assert tolerant.p_value == pytest.approx(2 * NormalDist().cdf(-1.0))  # 0.317
    assert drop_test(delta=+1.0, se=1.0, max_drop=0.0, alpha=0.05).p_value == 1.0  # capped
    # no noise at all: a drop is certain, no drop is certainly not one
    assert drop_test(-0.5, 0.0, 0.0, 0.05).p_value == 0.0
    assert drop_test(-0.5, 0.0, 1.0, 0.05).p_value == 1.0


def test_paired_se_of_plain_means_is_sd_of_differences():
    base = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    cand = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    ones = np.ones(5)
    diff = cand - base  # [0, 1, -1, 0, 1]: mean 0.2, sample sd √0.7
    assert paired_se((base, ones), (cand, ones)) == pytest.approx(math.sqrt(0.7) / math.sqrt(5))
    assert linearised(base, ones) == pytest.approx(base - base.mean())
    assert diff.mean() == pytest.approx(0.2)


def _ratio(num: np.ndarray, den: np.ndarray):
    """The statistic Σ num / Σ den over the drawn prompts (one seed: its draws are always 1)."""
    return lambda prompts, seed_counts: (prompts @ num) / (prompts @ den)


def test_ratio_linearisation_matches_bootstrap_se():
    """Per-part metrics (IFEval instruction level): delta-method SE agrees with the bootstrap SE."""
    rng = np.random.default_rng(1)
    den = rng.integers(1, 5, 800).astype(float)
    num = rng.binomial(den.astype(int), 0.7).astype(float)
    analytic = linearised(num, den).std(ddof=1) / math.sqrt(num.size)
    replicates = two_level_bootstrap(_ratio(num, den), num.size, {}, 4000, np.random.default_rng(2))
    assert replicates.std(ddof=1) == pytest.approx(analytic, rel=0.05)


def test_leaderboard_delta_interval_covers_a_known_difference_at_the_nominal_rate():
    """95% paired bootstrap intervals of Δ (through build_leaderboard) cover the true Δ ≈ 95% of the time.

    True Δ = shift/2 = 5 points exactly (see ``_pair``). 300 trials of 300 items; the binomial
    sd of the coverage is 1.3 points, so [0.91, 0.99] is ±3 sd around 0.95.
    """
    rng = np.random.default_rng(2024)
    covered = 0
    trials = 300
    for _ in range(trials):
        base, cand = _pair(rng, 300, shift=0.10)
        board = build_leaderboard(
            [make_result({TASK: {"acc,none": base}}, "dpo"), make_result({TASK: {"acc,none": cand}}, "new")],
            benchmarks=[RAW],
            n_boot=400,
            seed=int(rng.integers(1 << 31)),
        )
        delta = next(row for row in board.rows if row.method == "new").cells["raw"].delta
        assert delta.how == "paired bootstrap"
        assert delta.value == pytest.approx((cand.mean() - base.mean()) * 100)
        covered += delta.low <= 5.0 <= delta.high
    assert 0.91 <= covered / trials <= 0.99, covered


def test_regress_catches_a_planted_five_point_drop_on_500_items():
    """25 of the candidate's right answers turned wrong (−5 points) on top of pure noise."""
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(100):
        base, cand = _pair(rng, 500)
        right = np.flatnonzero(cand == 1)
        cand[rng.choice(right, 25, replace=False)] = 0.0
        report = compare(make_result({TASK: {"acc,none": base}}, "dpo"), make_result({TASK: {"acc,none": cand}}, "new"))
        caught += report.exit_code == 1
    # Power at these settings is ≈ 0.97 (z ≈ 3.9 against 1.96); 90 leaves room for seed luck.
    assert caught >= 90, caught


def _noise_false_alarms(seed: int, trials: int) -> int:
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(trials):
        base, cand = _pair(rng, 500)
        report = compare(make_result({TASK: {"acc,none": base}}, "dpo"), make_result({TASK: {"acc,none": cand}}, "new"))
        alarms += report.exit_code != 0
    return alarms


def test_regress_stays_green_on_pure_noise():
    """The issue's criterion: exit 0 in at least 95 of 100 seeded pure-noise trials."""
    assert _noise_false_alarms(seed=0, trials=100) <= 5


def test_regress_false_alarm_rate_is_the_nominal_one_sided_alpha_over_two():
    """Size of the gate: a drop is flagged when the 95% interval lies below 0, i.e. one-sided 2.5%.

    2000 trials: the binomial sd of the rate is 0.35 points, so [1.5%, 3.6%] is ±3 sd; a rate
    far below would mean a needlessly weak gate, far above a noisy one.
    """
    rate = _noise_false_alarms(seed=1, trials=2000) / 2000
    assert 0.015 <= rate <= 0.036, rate


def test_regress_noise_false_alarms_stay_controlled_with_many_metrics():
    """Holm over six metrics: pure noise on six tasks still passes in ≥ 95 of 100 trials."""
    rng = np.random.default_rng(12)
    green = 0
    for _ in range(100):
        tasks = [_pair(rng, 500) for _ in range(6)]
        base = make_result({f"t{i}": {"acc,none": b} for i, (b, _) in enumerate(tasks)}, "dpo")
        cand = make_result({f"t{i}": {"acc,none": c} for i, (_, c) in enumerate(tasks)}, "new")
        green += compare(base, cand).exit_code == 0
    assert green >= 95, green
