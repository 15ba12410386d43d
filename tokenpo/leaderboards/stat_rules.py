"""The leaderboard's statistical rules over per-item scores: when the data support an interval at all
(``why_no_interval``), the per-item influence of a ratio metric (``linearised``) and the paired z-test
of the regression gate (``drop_test``, ``paired_se``, ``holm``).

Every metric here is a ratio ``R = Σ num / Σ den`` over items (see ``ItemScores``); plain metrics
have ``den = 1`` and ``R`` is the mean. Items are grouped into prompts: an lm-eval document is one
prompt, and a judge that samples several answers per prompt (sentiment) says which prompt each
sample answers. The samples of one prompt share its difficulty, so a prompt, not a sample, is a
resampling unit of the two-level bootstrap over training seeds and prompts
(:func:`tokenpo.core.stats.two_level_bootstrap`, which the leaderboard's intervals use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

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
