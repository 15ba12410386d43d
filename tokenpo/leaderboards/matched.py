"""Matched-KL comparisons: each method's reward at the baseline's KL, along its own training path.

A run evaluated at its checkpoints (``eval.checkpoints``) traces a path of (KL to the reference,
reward) points from the base model (step 0: KL 0) to its final model. Methods reach different KLs,
and reward rises with KL, so comparing final models compares different budgets. Here a method's
reward is read off its path at the baseline's final KL:

- the path is the mean over the method's seeds of each evaluated step's (KL, reward) (its seeds are
  evaluated at the same steps), starting at the base model when it was evaluated on the same prompts;
- between neighbouring points it is linear in √KL (Gao et al. 2022, *Scaling laws for reward model
  overoptimization*, measure a policy's distance from its reference as √KL, along which reward
  changes smoothly); the first segment in step order that reaches the KL is used;
- never extrapolated: a KL beyond the path's ends has no matched point, and the verdict says so.

Δ = the method's matched reward − the baseline's final reward, with a percentile interval from the
two-level bootstrap (:func:`tokenpo.core.stats.two_level_bootstrap`): every resample draws the seeds
of both methods (paired when they share seeds) and the prompts (shared), recomputes both paths, the
baseline's final KL and the matched point. A resample whose matched KL falls outside the method's
path could hold any value: it counts against both ends of the interval (as −∞ for the low end, +∞
for the high end), so the interval widens honestly, and when more than the tail's share of resamples
has no matched point there is no interval. The verdict words are ``verdicts``'s.

Why one module: the path, the matched point, its bootstrap and the rule for resamples without a
matched point are one computation, checked against this docstring in one read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tokenpo.leaderboards.frontier import KL_METRIC, REWARD_METRIC
from tokenpo.leaderboards.intervals import Estimate, Intervals, coverage, digest
from tokenpo.leaderboards.results import Result
from tokenpo.leaderboards.stat_rules import SAME_VALUE_TOLERANCE, why_no_interval
from tokenpo.leaderboards.verdicts import Verdict, verdict


def matched_reward(kl: np.ndarray, reward: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Reward at KL ``target`` along each path, linear in √KL between neighbouring points; NaN off the path.

    ``kl`` and ``reward`` are (rows, points) in step order, ``target`` (rows,). The first segment (in
    step order) whose √KL range holds the target is used; a segment of one KL gives its first point's
    reward. Never extrapolates.
    """
    root, aim = np.sqrt(np.maximum(kl, 0.0)), np.sqrt(np.maximum(target, 0.0))
    out = np.full(target.shape, np.nan)
    for k in range(root.shape[1] - 1):
        a, b = root[:, k], root[:, k + 1]
        inside = (
            np.isnan(out)
            & (np.minimum(a, b) - SAME_VALUE_TOLERANCE <= aim)
            & (aim <= np.maximum(a, b) + SAME_VALUE_TOLERANCE)
        )
        span = b - a
        flat = np.abs(span) <= SAME_VALUE_TOLERANCE
        fraction = np.clip(np.where(flat, 0.0, (aim - a) / np.where(flat, 1.0, span)), 0.0, 1.0)
        value = reward[:, k] + fraction * (reward[:, k + 1] - reward[:, k])
        out = np.where(inside, value, out)
    if root.shape[1] == 1:  # a path of one point matches its own KL only
        out = np.where(np.abs(root[:, 0] - aim) <= SAME_VALUE_TOLERANCE, reward[:, 0], out)
    return out


def interval_with_unknowns(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval where NaN replicates (no matched point) count as −∞ for the low end and
    +∞ for the high end; an end is infinite when more than its tail's share is unknown."""
    tail = (1.0 - confidence) / 2.0
    unknown = np.isnan(samples)
    if not unknown.any():
        low, high = np.quantile(samples, [tail, 1.0 - tail])
        return float(low), float(high)
    low = np.quantile(np.where(unknown, -np.inf, samples), tail, method="inverted_cdf")
    high = np.quantile(np.where(unknown, np.inf, samples), 1.0 - tail, method="inverted_cdf")
    return float(low), float(high)


# --- paths from results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunPath:
    """One trained run's evaluated steps on a judge with a KL, in step order (the final model last)."""

    model: str
    method: str
    seed: int | None
    task: str
    results: tuple[Result, ...]

    @property
    def steps(self) -> tuple[int | None, ...]:
        return tuple(r.step for r in self.results)

    def points(self) -> list[tuple[int | None, float, float]]:
        """(step, KL, reward) of each evaluated step, as reported."""
        return [
            (r.step, r.metrics[(self.task, KL_METRIC)].value, r.metrics[(self.task, REWARD_METRIC)].value)
            for r in self.results
        ]


def has_kl(result: Result, task: str) -> bool:
    return (task, REWARD_METRIC) in result.metrics and (task, KL_METRIC) in result.metrics


def kl_tasks(results: Sequence[Result]) -> list[str]:
    return sorted({task for r in results for task in r.tasks if has_kl(r, task)})


def run_paths(results: Sequence[Result]) -> list[RunPath]:
    """Every trained run's path per judge task with a KL: its checkpoints' results, then its final one."""
    by_run: dict[tuple, list[Result]] = {}
    for result in results:
        if not result.trained:
            continue
        for task in kl_tasks([result]):
            by_run.setdefault((result.model, result.method, result.seed, task), []).append(result)
    paths = []
    for (model, method, seed, task), members in sorted(by_run.items(), key=lambda item: repr(item[0])):
        finals = [r for r in members if r.checkpoint_step is None]
        checkpoints = sorted((r for r in members if r.checkpoint_step is not None), key=lambda r: r.checkpoint_step)
        paths.append(RunPath(model, method, seed, task, tuple(checkpoints + finals[:1])))
    return paths


def path_records(results: Sequence[Result]) -> dict[str, list[dict]]:
    """``summary.json``'s ``paths``: each trained run's (step, KL, reward) in step order, from the untrained base
    model's point (step 0) when it was evaluated; keyed ``METHOD-seedS`` (``TASK/METHOD-seedS`` with several
    judge tasks), the final model last, at the steps it trained."""
    paths = run_paths(results)
    several_tasks = len({path.task for path in paths}) > 1
    records = {}
    for path in paths:
        base = base_result(results, path.model, path.task)
        start = (
            []
            if base is None
            else [(0, base.metrics[(path.task, KL_METRIC)].value, base.metrics[(path.task, REWARD_METRIC)].value)]
        )
        label = f"{path.method}-seed{path.seed}" if path.seed is not None else path.method
        records[f"{path.task}/{label}" if several_tasks else label] = [
            {"step": step, "kl": _round(kl), "reward": _round(reward)} for step, kl, reward in start + path.points()
        ]
    return records


def base_result(results: Sequence[Result], model: str, task: str) -> Result | None:
    """The untrained base model's final result on ``task`` for ``model`` (the paths' step 0)."""
    return next(
        (r for r in results if not r.trained and r.model == model and r.checkpoint_step is None and has_kl(r, task)),
        None,
    )


# --- the comparison ------------------------------------------------------------------------------------
@dataclass
class MatchedKL:
    """A method against the baseline at the baseline's final KL, on one judge task and base model."""

    task: str
    model: str
    method: str
    baseline: str
    kl: float  # the baseline's final KL: where the method's path is read
    path_kl: tuple[float, float]  # the KL range the method's (seed-mean) path covers
    reward: float  # the method's reward there (NaN: no matched point)
    baseline_reward: float
    delta: Estimate
    seeds: list[int | None]
    baseline_seeds: list[int | None]
    margin: float
    verdict: Verdict
    steps: list[int | None]  # the evaluated steps of the method's path (step 0: the base model)
    metric: str = REWARD_METRIC  # the reward read along the path ("METRIC,FILTER" of the judge task)

    def record(self) -> dict:
        """``summary.json``'s ``verdicts`` entry."""
        d = self.delta
        return {
            "task": self.task,
            "metric": self.metric,
            "model": self.model,
            "baseline": self.baseline,
            "kl": _round(self.kl),
            "path_kl": [_round(self.path_kl[0]), _round(self.path_kl[1])],
            "reward": _round(self.reward),
            "baseline_reward": _round(self.baseline_reward),
            "delta": _round(d.value),
            "low": _round(d.low) if d.has_interval else None,
            "high": _round(d.high) if d.has_interval else None,
            "no_interval": d.no_interval,
            "covers": d.covers,
            "seeds": [s for s in self.seeds if s is not None],
            "baseline_seeds": [s for s in self.baseline_seeds if s is not None],
            "steps": list(self.steps),
            "margin": self.margin,
            "verdict": self.verdict.word,
            "reason": self.verdict.reason,
        }


def _round(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


@dataclass(frozen=True)
class _Path:
    """One row's paths on shared prompts: (seeds, points, prompts) sums of reward and KL, with the base."""

    reward_num: np.ndarray
    kl_num: np.ndarray
    den: np.ndarray
    seeds: tuple
    base: tuple[np.ndarray, np.ndarray] | None  # the base model's (reward_num, den) per prompt
    trained = True  # paths are trained runs' (for ``intervals.coverage``)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def identity(self) -> str:
        """A digest of the path's numbers (``intervals.digest``): what names its bootstrap's prompt draws."""
        return digest(self.reward_num, self.kl_num, self.den, *(self.base or ()))

    def curves(self, prompts: np.ndarray, seed_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, points) seed-mean KL and reward on each resample, the base model first when known."""
        den = np.einsum("bc,spc->bsp", prompts, self.den)
        reward = np.einsum("bc,spc->bsp", prompts, self.reward_num) / den
        kl = np.einsum("bc,spc->bsp", prompts, self.kl_num) / den
        weights = seed_counts / seed_counts.shape[1]
        reward, kl = np.einsum("bs,bsp->bp", weights, reward), np.einsum("bs,bsp->bp", weights, kl)
        if self.base is not None:
            base_reward = (prompts @ self.base[0]) / (prompts @ self.base[1])
            reward = np.concatenate([base_reward[:, None], reward], axis=1)
            kl = np.concatenate([np.zeros((len(prompts), 1)), kl], axis=1)
        return kl, reward


class _PathData:
    """The per-prompt sums of every run of the rows compared, on the samples they all have."""

    def __init__(self, rows: dict[str, list[RunPath]], base: Result | None, task: str, reward: str = REWARD_METRIC):
        self.reward = reward
        results = [r for paths in rows.values() for path in paths for r in path.results]
        scored = [
            r.items.get((task, metric)) for r in [*results, *([base] if base else [])] for metric in (reward, KL_METRIC)
        ]
        self.usable = bool(scored) and all(s is not None for s in scored)
        if not self.usable:
            return
        shared = sorted(set.intersection(*(set(s.keys) for s in scored)))
        self.usable = bool(shared)
        if not self.usable:
            return
        prompt_of = scored[0].prompt_of()
        prompts = {p: i for i, p in enumerate(sorted({prompt_of[k] for k in shared}))}
        self.index = np.array([prompts[prompt_of[k]] for k in shared])
        self.keys, self.n_prompts, self.n_items, self.task = shared, len(prompts), len(shared), task
        self.base = None if base is None else (self._sums(base, reward), self._den(base))

    def _sums(self, result: Result, metric: str) -> np.ndarray:
        num, _ = result.items[(self.task, metric)].take(self.keys)
        return np.bincount(self.index, weights=num, minlength=self.n_prompts)

    def _den(self, result: Result) -> np.ndarray:
        _, den = result.items[(self.task, self.reward)].take(self.keys)
        return np.bincount(self.index, weights=den, minlength=self.n_prompts)

    def path(self, paths: list[RunPath], from_base: bool) -> _Path:
        """The per-prompt sums of ``paths`` (one per seed), starting at the base model when ``from_base``."""
        shape = (len(paths), len(paths[0].results), self.n_prompts)
        reward, kl, den = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for s, path in enumerate(paths):
            for k, result in enumerate(path.results):
                reward[s, k] = self._sums(result, self.reward)
                kl[s, k] = self._sums(result, KL_METRIC)
                den[s, k] = self._den(result)
        return _Path(reward, kl, den, tuple(p.seed for p in paths), self.base if from_base else None)


def matched_kl(
    results: Sequence[Result],
    baseline: str,
    intervals: Intervals,
    margin: float,
    flagged: Callable[[str, str], str | None] = lambda model, method: None,
    notes: list[str] | None = None,
    reward_metric: str = REWARD_METRIC,
) -> list[MatchedKL]:
    """Every trained method against ``baseline`` at the baseline's final KL, per judge task and model.

    ``flagged(model, method)`` names a training-health problem of a row (its verdict is then
    inconclusive); ``notes`` collects what could not be compared and why. ``reward_metric``: the judge's
    metric read along the paths (default the positive rate; e.g. ``p_positive,none`` for a secondary
    endpoint), each sample weighted as in the positive rate.
    """
    notes = notes if notes is not None else []
    comparisons = []
    paths = run_paths(results)
    for task in sorted({p.task for p in paths}):
        for model in sorted({p.model for p in paths if p.task == task}):
            rows: dict[str, list[RunPath]] = {}
            for path in paths:
                if path.task == task and path.model == model:
                    rows.setdefault(path.method, []).append(path)
            if baseline not in rows:
                continue
            for method in sorted(rows):
                if method == baseline:
                    continue
                compared = _compare(
                    task, model, method, baseline, rows, results, intervals, margin, flagged, notes, reward_metric
                )
                if compared is not None:
                    comparisons.append(compared)
    return comparisons


def _common_steps(paths: list[RunPath], label: str, notes: list[str]) -> list[RunPath]:
    """Each seed's path cut to the checkpoint steps every seed has (their final models always)."""
    steps = [set(p.steps[:-1]) for p in paths]
    common = set.intersection(*steps) if steps else set()
    if any(s != common for s in steps):
        notes.append(
            f"{label}: seeds were evaluated at different checkpoints; the path uses the steps all have "
            f"({sorted(common)})"
        )
    return [
        RunPath(
            p.model, p.method, p.seed, p.task, tuple(r for r in p.results[:-1] if r.step in common) + p.results[-1:]
        )
        for p in paths
    ]


def _compare(
    task,
    model,
    method,
    baseline,
    rows,
    results,
    intervals: Intervals,
    margin,
    flagged,
    notes,
    reward_metric=REWARD_METRIC,
):
    label = f"{task}: {method} vs {baseline} ({model}) at matched KL"
    mine = _common_steps(sorted(rows[method], key=lambda p: repr(p.seed)), label, notes)
    theirs = [
        RunPath(p.model, p.method, p.seed, p.task, p.results[-1:])
        for p in sorted(rows[baseline], key=lambda p: repr(p.seed))
    ]
    base = base_result(results, model, task)
    data = _PathData({method: mine, baseline: theirs}, base, task, reward_metric)
    if not data.usable:
        notes.append(f"{label}: no per-sample KL and reward shared by every point; no matched-KL verdict")
        return None
    # The method's path starts at the base model; the baseline is read at its final model only.
    comparison = _Comparison(data.path(mine, from_base=True), data.path(theirs, from_base=False))
    kl, reward, baseline_reward, span = comparison.point(data.n_prompts)
    value = reward - baseline_reward
    covers, seeds = coverage([comparison.path, comparison.target])
    if not math.isfinite(value):
        reason = (
            f"{baseline}'s final KL {kl:.3g} is outside {method}'s path (KL {span[0]:.3g}–{span[1]:.3g}; "
            "never extrapolated)"
        )
        estimate = Estimate.without_interval(value, reason, covers, seeds)
    else:
        unit = "prompt" if data.n_prompts < data.n_items else "item"
        estimate = _interval(comparison, value, data.n_prompts, unit, intervals, (task, model, method, baseline))
    problems = "; ".join(p for p in (flagged(model, method), flagged(model, baseline)) if p)
    steps = ([0] if base is not None else []) + list(mine[0].steps)
    return MatchedKL(
        task,
        model,
        method,
        baseline,
        kl,
        span,
        reward,
        baseline_reward,
        estimate,
        [p.seed for p in mine],
        [p.seed for p in theirs],
        margin,
        verdict(estimate, margin, problems or None),
        steps,
        reward_metric,
    )


@dataclass(frozen=True)
class _Comparison:
    """A method's path against the baseline's final models: the statistic and its value on the data."""

    path: _Path
    target: _Path

    def delta(self, prompts: np.ndarray, seed_counts: Callable[[tuple], np.ndarray]) -> np.ndarray:
        """The method's reward at the baseline's final KL minus the baseline's reward, per resample."""
        kl, reward = self.path.curves(prompts, seed_counts(self.path.seeds))
        target_kl, target_reward = self.target.curves(prompts, seed_counts(self.target.seeds))
        return matched_reward(kl, reward, target_kl[:, -1]) - target_reward[:, -1]

    def point(self, n_prompts: int) -> tuple[float, float, float, tuple[float, float]]:
        """On the data as they are: the baseline's final KL, the method's reward there (NaN off its path),
        the baseline's final reward, and the KL range of the method's path."""
        every = np.ones((1, n_prompts))
        kl, reward = self.path.curves(every, np.ones((1, self.path.n_seeds)))
        target_kl, target_reward = self.target.curves(every, np.ones((1, self.target.n_seeds)))
        at = float(matched_reward(kl, reward, target_kl[:, -1])[0])
        return float(target_kl[0, -1]), at, float(target_reward[0, -1]), (float(kl.min()), float(kl.max()))


def _interval(
    comparison: _Comparison, value: float, n_prompts: int, unit: str, intervals: Intervals, names: tuple
) -> Estimate:
    """``value`` with the two-level interval of the comparison's Δ (resamples off the path count against
    both ends), unless the prompts, the path or the variation cannot support one."""
    covers, seeds = coverage([comparison.path, comparison.target])
    reason = why_no_interval(n_prompts, math.inf, unit)
    if reason is None:
        stream = ("matched-kl", names[0], comparison.path.identity, comparison.target.identity)
        samples = intervals.replicates(
            comparison.delta, [comparison.path.seeds, comparison.target.seeds], n_prompts, stream
        )
        low, high = interval_with_unknowns(samples, intervals.confidence)
        if not (math.isfinite(low) and math.isfinite(high)):
            reason = f"the matched KL falls outside {names[2]}'s path in {np.isnan(samples).mean():.0%} of resamples"
        else:
            reason = why_no_interval(n_prompts, float(np.nanmax(samples) - np.nanmin(samples)), unit)
    if reason is not None:
        return Estimate.without_interval(value, reason, covers, seeds)
    defined = samples[~np.isnan(samples)]
    return Estimate(
        value, low, high, float(defined.std(ddof=1)), "paired bootstrap", samples, covers=covers, seeds=seeds
    )
