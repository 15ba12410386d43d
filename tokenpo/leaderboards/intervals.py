"""Confidence intervals of the leaderboard's numbers: a cell's score, a row's average and a Δ to the baseline.

Percentile bootstrap intervals over items where per-item scores exist (a Δ resamples the items both
rows share, paired), else normal intervals from the reported stderrs. Where the items cannot support
an interval (too few, or no variation: ``stats.why_no_interval``) there is none, and the reason instead.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from tokenpo.leaderboards.registry import Benchmark, normalise
from tokenpo.leaderboards.results import ItemScores, Result
from tokenpo.leaderboards.stats import (
    bootstrap,
    percentile_interval,
    ratio_on,
    why_no_interval,
    why_no_interval_over,
)

NO_ITEM_DATA = "no per-item scores or stderr"


@dataclass
class Estimate:
    """A number with its confidence interval and standard error, and how they were obtained."""

    value: float
    low: float
    high: float
    se: float
    how: str  # "paired bootstrap", "bootstrap", "stderr" (normal approximation), or "none"
    samples: np.ndarray | None = field(default=None, repr=False)  # bootstrap replicates, if any
    no_interval: str | None = None  # why there is none ("1 item", "no variation across 24 items", …)

    @classmethod
    def without_interval(cls, value: float, reason: str) -> Estimate:
        """A value whose items cannot support an interval (``stats.why_no_interval``), saying why."""
        return cls(value, math.nan, math.nan, math.nan, "none", no_interval=reason)

    @property
    def has_interval(self) -> bool:
        """False when ``how`` is "none"; ``no_interval`` then says why."""
        return self.how != "none"

    @property
    def significant(self) -> bool:
        """The interval excludes 0; never without an interval (too few items, no variation, no data)."""
        return self.has_interval and (self.low > 0 or self.high < 0)


class Intervals:
    """The intervals of one leaderboard: their level, the bootstrap's resamples and its seed.

    Every bootstrap draws from a random stream of its own, seeded by the seed and the name of what it
    estimates (``stream``: the row and benchmark), so a cell's interval is the same whichever other rows
    are on the board: a model card showing one model against its baseline shows the leaderboard's numbers.
    """

    def __init__(self, confidence: float, n_boot: int, seed: int):
        self.confidence = confidence
        self.z = NormalDist().inv_cdf(0.5 + confidence / 2)
        self.n_boot = n_boot
        self.seed = seed

    def rng(self, stream: Hashable) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(repr(stream).encode())])

    def bootstrapped(
        self,
        statistic: Callable[[np.ndarray], np.ndarray],
        value: float,
        per_item: np.ndarray,
        how: str,
        stream: Hashable,
    ) -> Estimate:
        """``value`` with the percentile-bootstrap interval of ``statistic`` over items, resampled from the
        random stream ``stream``, unless ``per_item`` (each item's contribution: its score, or for a Δ its
        paired difference) cannot support an interval (``why_no_interval``)."""
        reason = why_no_interval_over(per_item)
        if reason is not None:
            return Estimate.without_interval(value, reason)
        samples = bootstrap(statistic, per_item.size, self.n_boot, self.rng(stream))
        low, high = percentile_interval(samples, self.confidence)
        return Estimate(value, low, high, float(samples.std(ddof=1)), how, samples)

    def from_stderr(self, value: float, se: float, n_items: int | None, floor: float = -math.inf) -> Estimate:
        """``value`` ± z·``se`` (the normal interval; its low end no less than ``floor``), unless
        ``n_items`` items with standard error ``se`` cannot support an interval (``why_no_interval``)."""
        reason = why_no_interval(n_items, se)
        if reason is not None:
            return Estimate.without_interval(value, reason)
        return Estimate(value, max(floor, value - self.z * se), value + self.z * se, se, "stderr")

    def mean(self, parts: Mapping[str, Estimate]) -> Estimate:
        """Mean of estimates over independent item sets (benchmarks, keyed by label): a stratified
        bootstrap when every part has replicates, else a normal interval from ``√(Σ se²) / k``.

        The mean has an interval only when every part has one: the parts without (too few items, no
        variation, no data) are named instead, and the mean is then never significant.
        """
        estimates = list(parts.values())
        value = float(np.mean([e.value for e in estimates]))
        lacking = [label for label, e in parts.items() if not e.has_interval]
        if lacking:
            verb = "lacks" if len(lacking) == 1 else "lack"
            return Estimate.without_interval(value, f"{', '.join(lacking)} {verb} one")
        if all(e.samples is not None for e in estimates):
            samples = np.mean([e.samples for e in estimates], axis=0)
            low, high = percentile_interval(samples, self.confidence)
            how = "paired bootstrap" if any(e.how == "paired bootstrap" for e in estimates) else "bootstrap"
            return Estimate(value, low, high, float(samples.std(ddof=1)), how, samples)
        se = math.sqrt(sum(e.se**2 for e in estimates)) / len(estimates)
        return Estimate(value, value - self.z * se, value + self.z * se, se, "stderr")


# --- what the intervals are computed from ----------------------------------------------------------
def aligned_items(runs: list[Result], task: str, benchmark: Benchmark):
    """Per run, per metric ``(num, den)`` on the items all runs share, and their number; None without samples."""
    per_run = [_item_scores(run, task, benchmark) for run in runs]
    if any(parts is None for parts in per_run):
        return None, 0
    shared = set(per_run[0][0].keys)
    for parts in per_run:
        for part in parts:
            shared &= set(part.keys)
    keys = sorted(shared)
    if not keys:
        return None, 0
    return [[part.take(keys) for part in parts] for parts in per_run], len(keys)


def _item_scores(run: Result, task: str, benchmark: Benchmark) -> list[ItemScores] | None:
    parts = [run.items.get((task, metric)) for metric in benchmark.metrics]
    return parts if all(part is not None for part in parts) else None


def seed_mean_score(aligned, benchmark: Benchmark) -> Callable[[np.ndarray], np.ndarray]:
    """idx ↦ seed-mean normalised headline score on each resample of the ``aligned`` items."""

    def score(idx: np.ndarray) -> np.ndarray:
        per_seed = [
            normalise(np.mean([ratio_on(num, den, idx) for num, den in parts], axis=0), benchmark.random)
            for parts in aligned
        ]
        return np.mean(per_seed, axis=0)

    return score


def reported_stderr(runs: list[Result], task: str, benchmark: Benchmark) -> float | None:
    """Normalised standard error of the seed-mean score from reported stderrs.

    A headline made of several metrics (IFEval) takes the mean of their stderrs, the bound
    for perfectly correlated metrics, so the interval is never too narrow.
    """
    per_seed = []
    for run in runs:
        errors = [run.metrics[(task, m)].stderr for m in benchmark.metrics]
        if any(e is None for e in errors):
            return None
        per_seed.append(float(np.mean(errors)) * 100.0 / (1.0 - benchmark.random))
    return math.sqrt(sum(e * e for e in per_seed)) / len(per_seed)
