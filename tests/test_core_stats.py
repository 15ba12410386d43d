"""The shared statistics: mean and standard error by hand, the bootstrap against plain numpy resampling,
percentile intervals and the ``Interval`` type."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tokenpo.core import stats
from tokenpo.core.stats import (
    Interval,
    bootstrap_mean,
    draw_counts,
    mean_and_stderr,
    percentile_interval,
    two_level_bootstrap,
)


def test_mean_and_stderr_equal_hand_computed_values():
    # [1, 2, 3, 4]: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, sample variance 5/3,
    # standard error √(5/3 / 4) = √(5/12)
    assert mean_and_stderr([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 12)))
    # 0/1 scores 1, 0, 0, 1, 1: mean 0.6; deviations² 3 · 0.16 + 2 · 0.36 = 1.2, variance 0.3, se √(0.3 / 5)
    assert mean_and_stderr([1.0, 0.0, 0.0, 1.0, 1.0]) == pytest.approx((0.6, math.sqrt(0.06)))
    assert mean_and_stderr([7.0]) == (7.0, 0.0)  # one value: no spread to estimate
    with pytest.raises(ValueError, match="no values"):
        mean_and_stderr([])


def _numpy_resample_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap means by plain indexing: each resample draws len(values) indices with replacement."""
    index = np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))
    return values[index].mean(axis=1)


def test_bootstrap_mean_is_the_percentile_interval_of_independently_resampled_means():
    values = np.random.default_rng(11).normal(3.0, 2.0, 40)
    interval = bootstrap_mean(list(values), n_boot=3000, confidence=0.9, seed=5)
    expected_low, expected_high = np.quantile(_numpy_resample_means(values, 3000, 5), [0.05, 0.95])
    assert interval.low == pytest.approx(expected_low, rel=1e-12)
    assert interval.high == pytest.approx(expected_high, rel=1e-12)
    assert (interval.value, interval.stderr) == pytest.approx(mean_and_stderr(list(values)))
    assert interval.how == "bootstrap" and interval.contains(interval.value)
    with pytest.raises(ValueError):
        bootstrap_mean([])


def test_two_level_bootstrap_draws_seeds_and_prompts_as_plain_numpy_indexing_does():
    """3 seeds × 12 prompts: a replicate is the mean over the drawn seeds of the mean over the drawn prompts."""
    table = np.random.default_rng(0).random((3, 12))
    n_boot = 400
    seed_counts = {(0, 1, 2): draw_counts(3, n_boot, np.random.default_rng(9))}

    def seed_mean_of_prompt_means(prompts: np.ndarray, seed_counts_of) -> np.ndarray:
        per_seed = prompts @ table.T / table.shape[1]  # (rows, seeds)
        return (per_seed * seed_counts_of((0, 1, 2))).sum(axis=1) / table.shape[0]

    replicates = two_level_bootstrap(seed_mean_of_prompt_means, 12, seed_counts, n_boot, np.random.default_rng(8))
    seed_index = np.random.default_rng(9).integers(0, 3, size=(n_boot, 3))
    prompt_index = np.random.default_rng(8).integers(0, 12, size=(n_boot, 12))
    expected = [table[seed_index[b]][:, prompt_index[b]].mean() for b in range(n_boot)]
    assert replicates == pytest.approx(expected, rel=1e-12)


def test_draw_counts_hold_each_resample_and_chunks_give_the_same_replicates(monkeypatch):
    counts = draw_counts(7, 500, np.random.default_rng(0))
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    assert counts.mean() == pytest.approx(1.0)  # every unit is drawn once per resample on average

    def mean(prompts: np.ndarray, seed_counts_of) -> np.ndarray:
        return prompts @ np.arange(10.0) / 10

    whole = two_level_bootstrap(mean, 10, {}, 50, np.random.default_rng(3))
    monkeypatch.setattr(stats, "_CHUNK_ENTRIES", 70)  # 7 resamples per chunk
    chunked = two_level_bootstrap(mean, 10, {}, 50, np.random.default_rng(3))
    assert whole.shape == (50,)
    assert chunked == pytest.approx(whole)
    with pytest.raises(ValueError, match="at least one prompt"):
        two_level_bootstrap(mean, 0, {}, 50, np.random.default_rng(3))


def test_percentile_interval_takes_the_tail_quantiles():
    # 0..100: the 5% and 95% quantiles are 5 and 95; of 0..10 at 80%, 1 and 9
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval(np.arange(11.0), 0.8) == pytest.approx((1.0, 9.0))


def test_interval_has_both_ends_or_neither_in_order():
    interval = Interval(0.5, 0.4, 0.6, "bootstrap", covers="prompts", stderr=0.05)
    assert interval.bounds == (0.4, 0.6)
    assert interval.contains(0.4) and interval.contains(0.6) and not interval.contains(0.61)
    none = Interval(0.5, None, None, "none")
    assert none.bounds is None and not none.contains(0.5)
    assert (none.covers, none.stderr) == (None, None)
    with pytest.raises(ValueError, match="both ends or neither"):
        Interval(0.5, 0.4, None, "bootstrap")
    with pytest.raises(ValueError, match="above its high end"):
        Interval(0.5, 0.6, 0.4, "bootstrap")
    with pytest.raises(dataclasses.FrozenInstanceError):
        interval.low = 0.0  # type: ignore[misc]
    assert interval == Interval(0.5, 0.4, 0.6, "bootstrap", "prompts", 0.05)
