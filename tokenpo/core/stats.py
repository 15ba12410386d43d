"""Statistics shared by the judges and the leaderboards: a mean with its standard error, the bootstrap,
its percentile intervals, and ``Interval``, an estimate with its confidence interval.

Each exists once, so a judge's interval and the leaderboard's are computed by the same rule and a
word means one thing across the code. The leaderboard's own rules (when data support an interval at
all, the regression gate's drop test) stay in :mod:`tokenpo.leaderboards.stat_rules`.

**Resampling** (``draw_counts``): a bootstrap resample is stored as draw counts, how often each unit
(a prompt, a judge's sample, a training seed) was drawn, so a statistic of a resample is a weighted
sum over the units: one matrix product for thousands of resamples.

**The two-level bootstrap** (``two_level_bootstrap``): a resample draws a row's training seeds with
replacement and, independently, its prompts with replacement (every sample of a drawn prompt comes
along), and recomputes the statistic on the drawn seeds and prompts. Seeds and prompts are crossed
(every seed is evaluated on every prompt), so this is Owen's pigeonhole bootstrap for crossed random
effects (Owen 2007, *The pigeonhole bootstrap*, Ann. Appl. Stat. 1(2)): for the mean of an S × C table
``x = μ + a_s + b_c + e_sc`` its variance is exactly ``Σa²/S² + Σb²/C² + Σe²/(SC)²``
(tests/test_leaderboards_intervals.py checks this by hand), which holds the seed-to-seed and the
prompt-to-prompt variance. Resampling seeds with replacement gives the seed part (S − 1)/S of its
unbiased size, so with 2–3 seeds the seed part of an interval is somewhat narrow; the crossed term is
counted in full, which widens it a little. rliable (Agarwal et al. 2021, *Deep RL at the edge of the
statistical precipice*) resamples runs the same way. With one seed, or none (``seed_counts`` empty:
a judge's samples), the seed draw is always the same and the bootstrap is the ordinary one over prompts.

**Percentile intervals** (``percentile_interval``): the (1−c)/2 and (1+c)/2 quantiles of the
replicates, by numpy's default (linear) quantile rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Count matrices are built in chunks of about this many entries, so memory stays ~16 MB whatever
# the prompt count (MMLU has 14k) and bootstrap size.
_CHUNK_ENTRIES = 2_000_000

# A statistic of one chunk of resamples: ``statistic(prompt_counts, seed_counts_of)`` gets the
# (rows, C) matrix of how often each prompt was drawn in each resample, and for a seed set the
# (rows, S) matrix of how often each of its seeds was drawn; it returns one value per resample.
Statistic = Callable[[np.ndarray, Callable[[tuple], np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """An estimate ``value`` with its confidence interval [``low``, ``high``].

    ``low`` and ``high`` are both None when there is no interval (too little data, no reported
    error). ``how`` says how the interval was obtained: ``bootstrap`` (a percentile interval of
    resamples), ``stderr`` (the normal interval value ± z·stderr) or ``none``. ``covers`` names what
    the interval resamples when the caller knows it (the leaderboard's ``prompts``, ``training seeds
    and prompts``, …), ``stderr`` the standard error when known.
    """

    value: float
    low: float | None
    high: float | None
    how: str
    covers: str | None = None
    stderr: float | None = None

    def __post_init__(self) -> None:
        if (self.low is None) != (self.high is None):
            raise ValueError(f"an interval has both ends or neither, got low={self.low}, high={self.high}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"an interval's low end {self.low} is above its high end {self.high}")

    @property
    def bounds(self) -> tuple[float, float] | None:
        """``(low, high)``, or None when there is no interval."""
        if self.low is None or self.high is None:
            return None
        return self.low, self.high

    def contains(self, x: float) -> bool:
        """``low ≤ x ≤ high``; False when there is no interval."""
        bounds = self.bounds
        return bounds is not None and bounds[0] <= x <= bounds[1]


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / √n; 0 for one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("the mean of no values is undefined")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


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


def bootstrap_mean(values: Sequence[float], n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """The mean of ``values`` with its standard error (``mean_and_stderr``) and the percentile interval of
    its ``n_boot`` bootstrap resamples, each value one unit (``two_level_bootstrap`` without seeds),
    drawn from ``numpy.random.default_rng(seed)``."""
    if len(values) == 0:
        raise ValueError("the bootstrap needs at least one value")
    data = np.asarray(values, dtype=float)

    def resample_mean(counts: np.ndarray, _seed_counts: Callable[[tuple], np.ndarray]) -> np.ndarray:
        return counts @ data / data.size

    replicates = two_level_bootstrap(resample_mean, data.size, {}, n_boot, np.random.default_rng(seed))
    low, high = percentile_interval(replicates, confidence)
    mean, stderr = mean_and_stderr(values)
    return Interval(mean, low, high, "bootstrap", stderr=stderr)
