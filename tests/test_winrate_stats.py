"""Win rates, the length-controlled GLM and the paired bootstrap, against hand-computed values and an
independent numpy recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tokenpo.core.stats import bootstrap_mean
from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.stats import (
    SEPARATION_L2,
    fit_length_glm,
    length_controlled_win_rate,
    paired_bootstrap,
    win_rate,
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def two_groups(longer: list[float], shorter: list[float], gap: float = 40.0):
    """Outcomes with the candidate ``gap`` longer on the first group's prompts and ``gap`` shorter on the
    second's, lengths around 100."""
    outcomes = longer + shorter
    candidate = [100 + gap] * len(longer) + [100.0] * len(shorter)
    baseline = [100.0] * len(longer) + [100 + gap] * len(shorter)
    return outcomes, candidate, baseline


def test_win_rate_is_the_mean_outcome_in_percent():
    assert win_rate([1, 0, 0.5, 1]) == 62.5  # (1 + 0 + ½ + 1)/4 = 0.625
    assert win_rate([0.25, 0.75]) == 50.0
    with pytest.raises(EvalError, match="at least one judged pair"):
        win_rate([])
    with pytest.raises(EvalError, match=r"in \[0, 1\]"):
        win_rate([1.5])


def test_without_length_variation_the_lc_win_rate_is_the_win_rate():
    # Every difference equals 3: σ = 0, φ is not identified, θ = logit(ȳ), so sigmoid(θ) = ȳ.
    outcomes = [1, 0, 0.5, 1, 0.75]  # ȳ = 3.25/5 = 0.65
    glm = fit_length_glm(outcomes, [13] * 5, [10] * 5)
    assert (glm.sigma, glm.phi, glm.penalty) == (0.0, 0.0, 0.0)
    assert glm.theta == pytest.approx(logit(0.65), abs=1e-12)
    assert length_controlled_win_rate(outcomes, [13] * 5, [10] * 5) == pytest.approx(65.0, abs=1e-10)
    assert length_controlled_win_rate([0.5], [1], [7]) == pytest.approx(50.0)  # one prompt: no σ either


def test_the_glm_of_two_length_groups_has_its_closed_form():
    # m = 4 prompts at d = +40, four at d = −40: mean 0, sample variance 8·40²/7, so
    # d/σ = ±√(7/8) and t = tanh(√(7/8)). With two distinct x = ±t the fit is saturated:
    # sigmoid(θ + φt) = p₁ = 3/4 and sigmoid(θ − φt) = p₂ = 1.5/4 = 3/8, hence
    # θ = (logit p₁ + logit p₂)/2 and φ = (logit p₁ − logit p₂)/(2t).
    outcomes, candidate, baseline = two_groups([1, 1, 1, 0], [1, 0, 0, 0.5])
    glm = fit_length_glm(outcomes, candidate, baseline)
    t = math.tanh(math.sqrt(7 / 8))
    assert glm.sigma == pytest.approx(40 * math.sqrt(8 / 7), rel=1e-12)
    assert glm.theta == pytest.approx((logit(0.75) + logit(0.375)) / 2, abs=1e-8)
    assert glm.phi == pytest.approx((logit(0.75) - logit(0.375)) / (2 * t), abs=1e-8)
    assert glm.penalty == 0.0


def test_wins_explained_by_length_give_an_lc_win_rate_of_50():
    # Longer on 10 prompts, winning 8 (0.8); shorter on 5, winning 1 (0.2): the plain win rate is
    # 9/15 = 60 %, but at equal length θ = (logit 0.8 + logit 0.2)/2 = 0: LC = 50 %.
    outcomes, candidate, baseline = two_groups([1.0] * 8 + [0.0] * 2, [1.0] + [0.0] * 4)
    assert win_rate(outcomes) == pytest.approx(60.0)
    assert length_controlled_win_rate(outcomes, candidate, baseline) == pytest.approx(50.0, abs=1e-8)


def test_the_fit_solves_the_score_equations_on_irregular_data():
    # Maximum likelihood ⇔ Σ (yᵢ − pᵢ) = 0 and Σ (yᵢ − pᵢ) xᵢ = 0, checked from the definitions.
    rng = np.random.default_rng(3)
    candidate = rng.integers(50, 400, size=60).astype(float)
    baseline = rng.integers(50, 400, size=60).astype(float)
    outcomes = rng.choice([0, 0.25, 0.5, 0.75, 1], size=60)
    glm = fit_length_glm(outcomes, candidate, baseline)
    d = candidate - baseline
    x = np.tanh(d / d.std(ddof=1))
    p = 1 / (1 + np.exp(-(glm.theta + glm.phi * x)))
    assert abs(np.sum(outcomes - p)) < 1e-9 and abs(np.sum((outcomes - p) * x)) < 1e-9
    # Scaling every length (characters → a multiple) leaves tanh(d/σ), hence the fit, unchanged.
    assert length_controlled_win_rate(outcomes, 4 * candidate, 4 * baseline) == pytest.approx(glm.win_rate, abs=1e-9)


def test_unanimous_outcomes_are_100_or_0_whatever_the_lengths():
    assert length_controlled_win_rate([1, 1, 1], [10, 50, 90], [40, 40, 40]) == 100.0
    assert length_controlled_win_rate([0, 0], [10, 50], [40, 40]) == 0.0
    assert fit_length_glm([1, 1], [10, 50], [40, 40]).theta == math.inf


def test_separable_outcomes_are_fitted_with_the_documented_penalty():
    # Every longer answer won, every shorter one lost: no finite maximum; the penalised fit is
    # symmetric in ±t, so θ = 0 and LC = 50.
    outcomes, candidate, baseline = two_groups([1.0] * 5, [0.0] * 5)
    glm = fit_length_glm(outcomes, candidate, baseline)
    assert glm.penalty == SEPARATION_L2
    assert glm.phi > 5 and glm.theta == pytest.approx(0.0, abs=1e-9)
    assert glm.win_rate == pytest.approx(50.0, abs=1e-7)


def test_weights_count_a_prompt_as_often_as_drawn():
    outcomes, candidate, baseline = [1, 0, 0.5, 0.75, 0.25], [10, 30, 20, 60, 5], [20, 20, 20, 20, 20]
    weights = [2, 0, 1, 3, 1]
    repeated = [i for i, k in enumerate(weights) for _ in range(k)]
    pick = lambda values: [values[i] for i in repeated]  # noqa: E731
    by_weight = fit_length_glm(outcomes, candidate, baseline, weights=weights)
    by_repeat = fit_length_glm(pick(outcomes), pick(candidate), pick(baseline))
    assert by_weight.theta == pytest.approx(by_repeat.theta, abs=1e-10)
    assert by_weight.phi == pytest.approx(by_repeat.phi, abs=1e-10)
    assert by_weight.sigma == pytest.approx(by_repeat.sigma, rel=1e-12)


def test_bad_lengths_are_refused():
    with pytest.raises(EvalError, match="candidate_lengths: has 2 lengths for 3 outcomes"):
        length_controlled_win_rate([1, 0, 1], [1, 2], [1, 2, 3])
    with pytest.raises(EvalError, match="baseline_lengths"):
        length_controlled_win_rate([1, 0], [1, 2], [1, -2])
    with pytest.raises(EvalError, match="n_boot"):
        paired_bootstrap([1, 0], [1, 2], [1, 2], n_boot=0)


def test_paired_bootstrap_equals_an_independent_numpy_resampling():
    rng = np.random.default_rng(11)
    n, n_boot = 40, 300
    candidate = rng.integers(80, 300, size=n).astype(float)
    baseline = rng.integers(80, 300, size=n).astype(float)
    outcomes = rng.choice([0, 0.25, 0.5, 0.75, 1], size=n, p=[0.2, 0.1, 0.2, 0.2, 0.3])
    result = paired_bootstrap(outcomes, candidate, baseline, n_boot=n_boot, confidence=0.9, seed=5)

    # The same draws by plain indexing: each resample takes n prompts with replacement, whole.
    index = np.random.default_rng(5).integers(0, n, size=(n_boot, n))
    wr = outcomes[index].mean(axis=1) * 100
    lc = [length_controlled_win_rate(outcomes[i], candidate[i], baseline[i]) for i in index]
    wr_low, wr_high = np.quantile(wr, [0.05, 0.95])
    lc_low, lc_high = np.quantile(lc, [0.05, 0.95])

    wr_interval, lc_interval = result["win_rate"], result["length_controlled_win_rate"]
    assert wr_interval.value == pytest.approx(win_rate(outcomes))
    assert lc_interval.value == pytest.approx(length_controlled_win_rate(outcomes, candidate, baseline))
    assert wr_interval.bounds == pytest.approx((wr_low, wr_high), abs=1e-9)
    assert lc_interval.bounds == pytest.approx((lc_low, lc_high), abs=1e-7)
    assert wr_interval.contains(wr_interval.value) and lc_interval.contains(lc_interval.value)
    assert (wr_interval.how, wr_interval.covers, lc_interval.covers) == ("bootstrap", "prompts", "prompts")
    # One resampling rule across the code: the win rate's interval is bootstrap_mean's, × 100.
    reference = bootstrap_mean(outcomes.tolist(), n_boot=n_boot, confidence=0.9, seed=5)
    assert wr_interval.bounds == pytest.approx((100 * reference.low, 100 * reference.high))
    assert wr_interval.stderr == pytest.approx(100 * reference.stderr)
    # The refitted rate's standard error is its replicates' spread (what the leaderboard's interval uses).
    assert lc_interval.stderr == pytest.approx(np.std(lc, ddof=1), abs=1e-7)
    assert (result["n_pairs"], result["n_boot"], result["penalised_resamples"]) == (n, n_boot, 0)
