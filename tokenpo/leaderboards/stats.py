"""Statistics over per-item scores: the paired bootstrap, the paired z-test, and the rule for when
items support an interval at all (``why_no_interval``).

Every metric here is a ratio ``R = Σ num / Σ den`` over items (see ``ItemScores``); plain
metrics have ``den = 1`` and ``R`` is the mean. Items, not parts of items, are the resampling unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Index matrices are built in chunks of about this many entries, so memory stays ~16 MB
# whatever the item count (MMLU has 14k items) and bootstrap size.
_CHUNK_ENTRIES = 2_000_000


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray], n_items: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``statistic`` on ``n_boot`` resamples of ``n_items`` items drawn with replacement.

    ``statistic(idx)`` receives an index matrix of shape ``(chunk, n_items)`` (one resample per
    row) and returns one value per row. Paired comparisons pass a statistic that evaluates every
    run on the same rows, which is what makes the bootstrap paired.
    """
    if n_items <= 0:
        raise ValueError("bootstrap needs at least one item")
    chunk = max(1, _CHUNK_ENTRIES // n_items)
    values = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n_items, size=(min(chunk, n_boot - start), n_items))
        values.append(np.asarray(statistic(idx), dtype=float))
    return np.concatenate(values)


def ratio_on(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``Σ num / Σ den`` over the items of each resample (rows of ``idx``)."""
    return num[idx].sum(axis=1) / den[idx].sum(axis=1)


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


def why_no_interval(n_items: int | None, spread: float) -> str | None:
    """Why ``n_items`` items with this ``spread`` cannot support a confidence interval; None if they can.

    The rule, for every interval of the leaderboard (scores, Δ to the baseline, and so their
    average): no interval with fewer than ``MIN_ITEMS_FOR_INTERVAL`` (10) items, nor when the items
    show no variation (``spread``: the range of the per-item values, or a reported standard error,
    is 0). Why 10: an interval over items stands on the sample's own spread. With n items the
    percentile bootstrap is about the normal interval with the plug-in sd, which for a nominal 95%
    covers ≈ 90% at n = 10 (Student's t with 9 degrees of freedom), 85% at 5, 75% at 3 and 0 at 1,
    where every resample is the one item and the "interval" is a point; below 6 items not even an
    exact sign test can reach p < 0.05. With no variation (every item scored alike, or for a Δ every
    shared item moved by the same amount) all resamples agree, which says nothing about items not
    drawn. ``n_items`` None (unknown) leaves only the variation test.
    """
    if n_items is not None and n_items < MIN_ITEMS_FOR_INTERVAL:
        return _items(n_items)
    if not spread > SAME_VALUE_TOLERANCE:  # also catches a NaN spread
        return "no variation" + (f" across {_items(n_items)}" if n_items is not None else "")
    return None


def why_no_interval_over(per_item: np.ndarray) -> str | None:
    """``why_no_interval`` for per-item values (scores, or paired differences): their count and range."""
    return why_no_interval(per_item.size, float(np.ptp(per_item)) if per_item.size else 0.0)


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def linearised(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per-item influence of ``R = Σ num / Σ den``: ``ψ_i = (num_i − R·den_i) / mean(den)``.

    ``R − R_true ≈ mean(ψ)`` to first order (the delta method), so ``sd(ψ)/√n`` is R's standard
    error; with ``den = 1`` it is the usual ``x_i − mean(x)``.
    """
    ratio = num.sum() / den.sum()
    return (num - ratio * den) / den.mean()


def mean_influence(runs: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """Per-item influence (``linearised``) of the mean over runs of the mean over metric parts of ``R``.

    ``runs`` holds per run its metric parts as ``(num, den)`` on the same items. This is what each
    item contributes to a seed-mean headline score, so the influences of two rows' runs subtract
    to the per-item paired differences of their Δ; all zero exactly when the items show no variation.
    """
    return np.mean([np.mean([linearised(num, den) for num, den in parts], axis=0) for parts in runs], axis=0)


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
