"""Confidence intervals of the leaderboard's numbers: a cell's score, a row's average and a Δ to the baseline.

Where per-item scores exist, percentile intervals of the two-level bootstrap (:mod:`tokenpo.core.stats`): a row's
training seeds are drawn with replacement, then its prompts (all samples of a prompt together); a
Δ draws the prompts both rows share once for both, and the seeds of rows with the same seeds once
for both (paired by seed and prompt). Without per-item scores, normal intervals from the reported
stderrs. Where the data cannot support an interval (too few prompts, or no variation:
``stat_rules.why_no_interval``) there is none, and the reason instead.

Every estimate records what its interval covers (``covers``) and how many training seeds stand
behind it (``seeds``): a claim about a method (a ``*``, "better", "worse") needs at least
``MIN_SEEDS_FOR_CLAIM`` training seeds in every trained row it compares. With one seed the interval
covers evaluation noise only: how the same trained model would score on other prompts, not how the
method would on another training run.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

import numpy as np

from tokenpo.core.stats import Statistic, draw_counts, percentile_interval, two_level_bootstrap
from tokenpo.leaderboards.columns import Benchmark, normalised_score
from tokenpo.leaderboards.results import Result
from tokenpo.leaderboards.stat_rules import why_no_interval

NO_ITEM_DATA = "no per-item scores or stderr"
# What an interval resamples (Estimate.covers).
SEEDS_AND_PROMPTS = "training seeds and prompts"
PROMPTS = "prompts"
SOME_SEEDS_AND_PROMPTS = "prompts, and training seeds where a row has several"
SEEDS_AND_ITEMS = "training seeds and items (reported stderrs)"
ITEMS = "items (reported stderrs)"
# One training run says how that run came out, not how the method does: a claim needs replication.
MIN_SEEDS_FOR_CLAIM = 2


@dataclass
class Estimate:
    """A number with its confidence interval and standard error, how they were obtained and what they cover."""

    value: float
    low: float
    high: float
    se: float
    how: str  # "paired bootstrap", "bootstrap", "stderr" (normal approximation), or "none"
    samples: np.ndarray | None = field(default=None, repr=False)  # bootstrap replicates, if any
    no_interval: str | None = None  # why there is none ("1 item", "no variation across 24 prompts", …)
    covers: str = PROMPTS  # what the interval resamples (SEEDS_AND_PROMPTS, PROMPTS, …)
    seeds: int | None = None  # the fewest training seeds of a trained row behind it; None: untrained only

    @classmethod
    def without_interval(cls, value: float, reason: str, covers: str = PROMPTS, seeds: int | None = None) -> Estimate:
        """A value whose data cannot support an interval (``stat_rules.why_no_interval``), saying why."""
        return cls(value, math.nan, math.nan, math.nan, "none", no_interval=reason, covers=covers, seeds=seeds)

    @property
    def has_interval(self) -> bool:
        """False when ``how`` is "none"; ``no_interval`` then says why."""
        return self.how != "none"

    @property
    def claim_blocked(self) -> str | None:
        """Why this estimate cannot support a claim about a method whatever its interval ("1 training seed")."""
        if self.seeds is not None and self.seeds < MIN_SEEDS_FOR_CLAIM:
            return f"{self.seeds} training seed" + ("s" if self.seeds != 1 else "")
        return None

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.low > 0 or self.high < 0)

    @property
    def significant(self) -> bool:
        """The interval excludes 0 and the estimate may support a claim (enough training seeds)."""
        return self.excludes_zero and self.claim_blocked is None


# --- the data a bootstrap draws from ---------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    """One row's per-item scores on the items a computation shares, summed per prompt.

    ``num`` and ``den`` have shape (parts, seeds, prompts): for each metric of a headline (IFEval
    has two), each training seed of the row, each prompt, the sums of its items' ``num`` and ``den``.
    ``seeds`` keys the row's seed draws (rows with the same seeds share them: paired by seed).
    ``task`` and ``metrics`` say what the sums are of (they name the panel's prompt draws: ``identity``).
    """

    num: np.ndarray
    den: np.ndarray
    seeds: tuple
    trained: bool
    n_items: int
    task: str = ""
    metrics: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, tuple[str, ...], str]:
        """What the panel is of and a digest of its numbers, not whose they are: two rows that answered
        alike have one identity, so their bootstraps draw the same prompts (``Intervals.bootstrapped``)."""
        return self.task, self.metrics, digest(self.num, self.den)

    @property
    def n_prompts(self) -> int:
        return self.num.shape[2]

    @property
    def n_seeds(self) -> int:
        return self.num.shape[1]

    def ratios(self, prompts: np.ndarray) -> np.ndarray:
        """(rows, parts, seeds): each part's ``Σ num / Σ den`` over the drawn prompts, per seed."""
        return np.einsum("bc,psc->bps", prompts, self.num) / np.einsum("bc,psc->bps", prompts, self.den)

    def seed_mean(self, per_seed: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
        """(rows,) the mean over the drawn seeds of (rows, seeds) values."""
        return (per_seed * seed_counts).sum(axis=1) / self.n_seeds

    def score(self, prompts: np.ndarray, seed_counts: np.ndarray, random: float) -> np.ndarray:
        """(rows,) the seed-mean of the normalised headline (the mean of its parts) on each resample."""
        return self.seed_mean(normalised_score(self.ratios(prompts).mean(axis=1), random), seed_counts)

    def point(self, random: float) -> float:
        """The score on the data as they are: every prompt and seed once."""
        return float(self.score(np.ones((1, self.n_prompts)), np.ones((1, self.n_seeds)), random)[0])

    def mean(self, prompts: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
        """(rows,) the seed-mean of the raw metric (the mean of its parts), not normalised: the frontier's
        KL and positive rate, whose normalised score (``score``) the leaderboard shows."""
        return self.seed_mean(self.ratios(prompts).mean(axis=1), seed_counts)


def digest(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' shapes and float64 values: the same numbers, the same digest."""
    hashed = hashlib.sha256()
    for array in arrays:
        values = np.ascontiguousarray(array, dtype=np.float64)
        hashed.update(repr(values.shape).encode())
        hashed.update(values.tobytes())
    return hashed.hexdigest()


def panels(rows: Sequence[Sequence[Result]], task: str, metrics: Sequence[str]) -> list[Panel] | None:
    """A panel per row (its runs: one per seed) on the items every run of every row has; None when a
    run lacks per-item scores of a metric or the runs share no item."""
    parts = [[[run.items.get((task, metric)) for metric in metrics] for run in runs] for runs in rows]
    scored = [part for runs in parts for run in runs for part in run]
    if not scored or any(part is None for part in scored):
        return None
    shared = set.intersection(*(set(part.keys) for part in scored))
    if not shared:
        return None
    keys = sorted(shared)
    prompt_of = scored[0].prompt_of()
    prompt_ids = {prompt: i for i, prompt in enumerate(sorted({prompt_of[key] for key in keys}))}
    index = np.array([prompt_ids[prompt_of[key]] for key in keys])
    out = []
    for runs, run_parts in zip(rows, parts, strict=True):
        num = np.zeros((len(metrics), len(runs), len(prompt_ids)))
        den = np.zeros_like(num)
        for s, run_part in enumerate(run_parts):
            for p, scores in enumerate(run_part):
                item_num, item_den = scores.take(keys)
                num[p, s] = np.bincount(index, weights=item_num, minlength=len(prompt_ids))
                den[p, s] = np.bincount(index, weights=item_den, minlength=len(prompt_ids))
        seeds, trained = tuple(run.seed for run in runs), any(run.trained for run in runs)
        out.append(Panel(num, den, seeds, trained, len(keys), task, tuple(metrics)))
    return out


class Resampled(Protocol):
    """What ``coverage`` reads of a row a bootstrap draws from (a ``Panel``, a matched-KL path)."""

    @property
    def n_seeds(self) -> int: ...

    @property
    def trained(self) -> bool: ...


def coverage(rows: Sequence[Resampled]) -> tuple[str, int | None]:
    """What a bootstrap over these rows covers, and the fewest training seeds of a trained row (None: none trained)."""
    trained = [row.n_seeds for row in rows if row.trained]
    if not trained:
        return PROMPTS, None
    if min(trained) >= 2:
        return SEEDS_AND_PROMPTS, min(trained)
    return (SOME_SEEDS_AND_PROMPTS if max(trained) >= 2 else PROMPTS), min(trained)


# --- the intervals ---------------------------------------------------------------------------------
class Intervals:
    """The intervals of one leaderboard: their level, the bootstrap's resamples and its seed.

    An interval is a function of the data it is computed from, not of where it is shown: a bootstrap
    draws its prompts from a random stream seeded by the seed and the data (``Panel.identity``: the
    task, the metrics and the per-prompt sums of the rows it reads), never by the row's name. So one
    result has one interval in the leaderboard, the frontier and a model card, whichever other rows are
    on the board, and two models that answered every item alike get the same interval. Training seeds
    are drawn from a stream named by the seed set, the same for every cell and row with those seeds
    (``seed_counts``): rows with the same seeds are paired by seed, and a row's seed draws are the same
    in every benchmark, so an average keeps a seed's effect on all of them together.
    """

    def __init__(self, confidence: float, n_boot: int, seed: int):
        self.confidence = confidence
        self.z = NormalDist().inv_cdf(0.5 + confidence / 2)
        self.n_boot = n_boot
        self.seed = seed
        self._seed_counts: dict[tuple, np.ndarray] = {}

    def rng(self, stream: Hashable) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(repr(stream).encode())])

    def seed_counts(self, seeds: tuple) -> np.ndarray:
        """(n_boot, S): how often each of ``seeds`` is drawn in each resample (S = 1: always once)."""
        if seeds not in self._seed_counts:
            self._seed_counts[seeds] = draw_counts(len(seeds), self.n_boot, self.rng(("seeds", seeds)))
        return self._seed_counts[seeds]

    def replicates(
        self, statistic: Statistic, seed_sets: Iterable[tuple], n_prompts: int, stream: Hashable
    ) -> np.ndarray:
        """``statistic`` on ``n_boot`` two-level resamples of the rows' ``seed_sets`` and ``n_prompts`` shared
        prompts (drawn from the stream ``stream``)."""
        counts = {seeds: self.seed_counts(seeds) for seeds in seed_sets}
        return two_level_bootstrap(statistic, n_prompts, counts, self.n_boot, self.rng(stream))

    def bootstrapped(self, statistic: Statistic, value: float, panels: Sequence[Panel], how: str) -> Estimate:
        """``value`` with the percentile interval of ``statistic`` over two-level resamples of ``panels``,
        unless too few prompts or no variation leave none (``why_no_interval``). The prompts are drawn from
        the stream of the panels' data (``Panel.identity``)."""
        covers, seeds = coverage(panels)
        unit = "prompt" if any(panel.n_prompts < panel.n_items for panel in panels) else "item"
        n_prompts = panels[0].n_prompts
        reason = why_no_interval(n_prompts, math.inf, unit)
        if reason is None:
            stream = ("prompts", *(panel.identity for panel in panels))
            samples = self.replicates(statistic, [panel.seeds for panel in panels], n_prompts, stream)
            reason = why_no_interval(n_prompts, float(np.ptp(samples)), unit)
        if reason is not None:
            return Estimate.without_interval(value, reason, covers, seeds)
        low, high = percentile_interval(samples, self.confidence)
        return Estimate(value, low, high, float(samples.std(ddof=1)), how, samples, covers=covers, seeds=seeds)

    def from_stderr(
        self, value: float, se: float, n_items: int | None, seeds: int | None, floor: float = -math.inf
    ) -> Estimate:
        """``value`` ± z·``se`` (the normal interval; its low end no less than ``floor``), unless
        ``n_items`` items with standard error ``se`` cannot support an interval (``why_no_interval``)."""
        covers = SEEDS_AND_ITEMS if seeds is not None and seeds >= 2 else ITEMS
        reason = why_no_interval(n_items, se)
        if reason is not None:
            return Estimate.without_interval(value, reason, covers, seeds)
        return Estimate(
            value, max(floor, value - self.z * se), value + self.z * se, se, "stderr", covers=covers, seeds=seeds
        )

    def mean(self, parts: Mapping[str, Estimate]) -> Estimate:
        """Mean of estimates over independent item sets (benchmarks, keyed by label): a stratified
        bootstrap when every part has replicates (their seed draws are shared, so a seed's effect on
        every benchmark moves together), else a normal interval from ``√(Σ se²) / k``.

        The mean has an interval only when every part has one: the parts without (too few items, no
        variation, no data) are named instead, and the mean is then never significant.
        """
        estimates = list(parts.values())
        value = float(np.mean([e.value for e in estimates]))
        covers = {e.covers for e in estimates}
        covers_all = covers.pop() if len(covers) == 1 else PROMPTS
        trained = [e.seeds for e in estimates if e.seeds is not None]
        seeds = min(trained) if trained else None
        lacking = [label for label, e in parts.items() if not e.has_interval]
        if lacking:
            verb = "lacks" if len(lacking) == 1 else "lack"
            return Estimate.without_interval(value, f"{', '.join(lacking)} {verb} one", covers_all, seeds)
        if all(e.samples is not None for e in estimates):
            samples = np.mean([e.samples for e in estimates], axis=0)
            low, high = percentile_interval(samples, self.confidence)
            how = "paired bootstrap" if any(e.how == "paired bootstrap" for e in estimates) else "bootstrap"
            return Estimate(value, low, high, float(samples.std(ddof=1)), how, samples, covers=covers_all, seeds=seeds)
        se = math.sqrt(sum(e.se**2 for e in estimates)) / len(estimates)
        return Estimate(value, value - self.z * se, value + self.z * se, se, "stderr", covers=covers_all, seeds=seeds)


# --- what the intervals are computed from ----------------------------------------------------------
def score_statistic(panel: Panel, benchmark: Benchmark) -> Statistic:
    """(prompt counts, seed counts) ↦ the row's seed-mean normalised headline score on each resample."""

    def score(prompts: np.ndarray, seed_counts: Callable[[tuple], np.ndarray]) -> np.ndarray:
        return panel.score(prompts, seed_counts(panel.seeds), benchmark.random)

    return score


def mean_statistic(panel: Panel) -> Statistic:
    """(prompt counts, seed counts) ↦ the row's seed-mean of the raw metric on each resample (``Panel.mean``)."""

    def mean(prompts: np.ndarray, seed_counts: Callable[[tuple], np.ndarray]) -> np.ndarray:
        return panel.mean(prompts, seed_counts(panel.seeds))

    return mean


def difference_statistic(panel: Panel, base: Panel, benchmark: Benchmark) -> Statistic:
    """The paired Δ: the row's score minus the baseline's on the same drawn prompts (and seeds, when shared)."""
    mine, theirs = score_statistic(panel, benchmark), score_statistic(base, benchmark)

    def difference(prompts: np.ndarray, seed_counts: Callable[[tuple], np.ndarray]) -> np.ndarray:
        return mine(prompts, seed_counts) - theirs(prompts, seed_counts)

    return difference


def reported_stderr(runs: list[Result], task: str, benchmark: Benchmark) -> float | None:
    """Normalised standard error of the seed-mean score from reported stderrs.

    A headline made of several metrics (IFEval) takes the mean of their stderrs, the bound for
    perfectly correlated metrics, so the interval is never too narrow. With several seeds the
    seed-to-seed spread of the scores (which holds each seed's evaluation noise too) gives
    ``sd / √S`` when that is larger: the seeds' own variation, not only the items'.
    """
    per_seed, scores = [], []
    for run in runs:
        errors = [run.metrics[(task, m)].stderr for m in benchmark.metrics]
        if any(e is None for e in errors):
            return None
        per_seed.append(float(np.mean(errors)) * 100.0 / (1.0 - benchmark.random))
        raw = float(np.mean([run.metrics[(task, m)].value for m in benchmark.metrics]))
        scores.append(normalised_score(raw, benchmark.random))
    items_only = math.sqrt(sum(e * e for e in per_seed)) / len(per_seed)
    if len(scores) < 2:
        return items_only
    return max(items_only, float(np.std(scores, ddof=1)) / math.sqrt(len(scores)))
