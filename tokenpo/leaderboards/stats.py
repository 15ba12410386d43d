"""Statistics over per-item scores: the two-level bootstrap over training seeds and prompts, the
paired z-test of the regression gate, and the rule for when the data support an interval at all
(``why_no_interval``).

Every metric here is a ratio ``R = Σ num / Σ den`` over items (see ``ItemScores``); plain metrics
have ``den = 1`` and ``R`` is the mean. Items are grouped into prompts: an lm-eval document is one
prompt, and a judge that samples several answers per prompt (sentiment) says which prompt each
sample answers. The samples of one prompt share its difficulty, so a prompt, not a sample, is a
resampling unit.

**The two-level bootstrap** (``two_level_bootstrap``): a resample draws the row's training seeds
with replacement and, independently, its prompts with replacement (every sample of a drawn prompt
comes along), and recomputes the seed-mean of the score on the drawn prompts. Seeds and prompts are
crossed (every seed is evaluated on every prompt), so this is Owen's pigeonhole bootstrap for
crossed random effects (Owen 2007, *The pigeonhole bootstrap*, Ann. Appl. Stat. 1(2)): for the mean
of an S × C table ``x = μ + a_s + b_c + e_sc`` its variance is exactly
``Σa²/S² + Σb²/C² + Σe²/(SC)²`` (tests/test_leaderboards_intervals.py checks this by hand), which
holds the seed-to-seed and the prompt-to-prompt variance. Resampling seeds with replacement gives
the seed part (S − 1)/S of its unbiased size, so with 2–3 seeds the seed part of an interval is
somewhat narrow; the crossed term is counted in full, which widens it a little. rliable (Agarwal et
al. 2021, *Deep RL at the edge of the statistical precipice*) resamples runs the same way. With one
seed the seed draw is always that seed: the interval covers prompts (evaluation noise) only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Count matrices are built in chunks of about this many entries, so memory stays ~16 MB whatever
# the prompt count (MMLU has 14k) and bootstrap size.
_CHUNK_ENTRIES = 2_000_000

# A statistic of one chunk of resamples: ``statistic(prompt_counts, seed_counts_of)`` gets the
# (rows, C) matrix of how often each prompt was drawn in each resample, and for a seed set the
# (rows, S) matrix of how often each of its seeds was drawn; it returns one value per resample.
Statistic = Callable[[np.ndarray, Callable[[tuple], np.ndarray]], np.ndarray]


def draw_counts(n_units: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, n_units) draw counts: each row draws ``n_units`` units uniformly with replacement."""
    index = rng.integers(0, n_units, size=(rows, n_units))
    flat = (index + n_units * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n_units).reshape(rows, n_units).astype(float)


def two_level_bootstrap(
    statistic: Statistic,
    n_prompts: int,
    seed_counts: dict[tuple, np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``statistic`` on ``n_boot`` resamples that draw prompts (from ``rng``) and training seeds.

    ``seed_counts`` maps each seed set the statistic reads to its (n_boot, S) draw counts
    (``draw_counts``); rows that share a seed set share its draws, which pairs them by seed, and a
    row's draws are the same in every cell it has, so averages over benchmarks keep a seed's effect
    on all of them together. Prompts are drawn per call: one call covers the items both rows of a
    paired Δ share.
    """
    if n_prompts <= 0:
        raise ValueError("the bootstrap needs at least one prompt")
    chunk = max(1, _CHUNK_ENTRIES // n_prompts)
    values = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        prompts = draw_counts(n_prompts, rows, rng)
        values.append(np.asarray(statistic(prompts, _rows_of(seed_counts, start, rows)), float))
    return np.concatenate(values)


def _rows_of(seed_counts: dict[tuple, np.ndarray], start: int, rows: int) -> Callable[[tuple], np.ndarray]:
    """A seed set's draw counts for the resamples ``start`` to ``start + rows``."""
    return lambda seeds: seed_counts[seeds][start : start + rows]


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile bootstrap interval: the (1−c)/2 and (1+c)/2 quantiles of the samples."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


# The rule for when items support a confidence interval (see ``why_no_interval``).
MIN_ITEMS_FOR_INTERVAL = 10
# Per-item values (or a standard error) within this of each other count as equal: a score's items
# differ by at least 1/den when they differ at all, and rounding in Σ num / Σ den is ~1e-16.
SAME_VALUE_TOLERANCE = 1e-9


def why_no_interval(n_items: int | None, spread: float, unit: str = "item") -> str | None:
    """Why ``n_items`` items (or prompts: ``unit``) with this ``spread`` cannot support a confidence
    interval; None if they can.

    The rule, for every interval of the leaderboard (scores, Δ to the baseline, and so their
    average): no interval with fewer than ``MIN_ITEMS_FOR_INTERVAL`` (10) items, nor when the data
    show no variation (``spread``: the range of the bootstrap replicates, or a reported standard
    error, is 0). Items are counted as resampling units: prompts, when a judge samples several
    answers per prompt. Why 10: an interval over items stands on the sample's own spread. With n
    items the percentile bootstrap is about the normal interval with the plug-in sd, which for a
    nominal 95% covers ≈ 90% at n = 10 (Student's t with 9 degrees of freedom), 85% at 5, 75% at 3
    and 0 at 1, where every resample is the one item and the "interval" is a point; below 6 items
    not even an exact sign test can reach p < 0.05. With no variation (every item scored alike in
    every seed, or for a Δ every shared item and seed moved by the same amount) all resamples agree,
    which says nothing about items not drawn. ``n_items`` None (unknown) leaves only the variation
    test.
    """
    if n_items is not None and n_items < MIN_ITEMS_FOR_INTERVAL:
        return counted(n_items, unit)
    if not spread > SAME_VALUE_TOLERANCE:  # also catches a NaN spread
        return "no variation" + (f" across {counted(n_items, unit)}" if n_items is not None else "")
    return None


def counted(n: int, unit: str = "item") -> str:
    """``1 item``, ``24 prompts``."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def linearised(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per-item influence of ``R = Σ num / Σ den``: ``ψ_i = (num_i − R·den_i) / mean(den)``.

    ``R − R_true ≈ mean(ψ)`` to first order (the delta method), so ``sd(ψ)/√n`` is R's standard
    error; with ``den = 1`` it is the usual ``x_i − mean(x)``.
    """
    ratio = num.sum() / den.sum()
    return (num - ratio * den) / den.mean()


@dataclass(frozen=True)
class DropTest:
    """Did the candidate drop by more than ``max_drop`` against the baseline?

    ``delta`` is candidate − baseline in the metric's direction (positive = better), ``se`` its
    standard error, ``p_value`` the two-sided-convention p-value of H0 ``delta ≥ −max_drop``.
    """

    delta: float
    se: float
    p_value: float
    low: float
    high: float


def drop_test(delta: float, se: float, max_drop: float, alpha: float) -> DropTest:
    """z-test of H0 ``Δ ≥ −max_drop`` against H1 ``Δ < −max_drop`` (Δ oriented so higher is better).

    ``z = (Δ + max_drop) / se``; the p-value is ``2·Φ(z)`` capped at 1 (the two-sided convention),
    so ``p < α`` exactly when the two-sided (1−α) interval ``Δ ± z_{1−α/2}·se`` lies entirely below
    ``−max_drop``: the same interval the leaderboard prints.
    """
    z_crit = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    if se > 0:
        p_value = min(1.0, 2.0 * NormalDist().cdf((delta + max_drop) / se))
    else:  # every item moved by exactly the same amount: no sampling noise to test against
        p_value = 0.0 if delta < -max_drop else 1.0
    return DropTest(delta=delta, se=se, p_value=p_value, low=delta - z_crit * se, high=delta + z_crit * se)


def paired_se(base: tuple[np.ndarray, np.ndarray], cand: tuple[np.ndarray, np.ndarray]) -> float:
    """Standard error of ``R_cand − R_base`` on the same items: ``sd(ψ_cand − ψ_base) / √n``.

    Pairing removes the item-difficulty variance both runs share, which is most of it for two
    checkpoints of one model; for 0/1 scores this is the large-sample McNemar test.
    """
    diff = linearised(*cand) - linearised(*base)
    n = diff.size
    return float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values: family-wise error ≤ α under any dependence."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, position in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[position]))
        adjusted[position] = running
    return adjusted
