"""The reward–KL frontier of sentiment control: one point per method family and β, with intervals.

A point stands for every seed of one ``(method_family, beta)`` (from the results' ``harness``
block; without that metadata ``(method, None)``) on one task and base model, final models only
(checkpoints evaluated on the way are the runs' paths: ``matched``). Its coordinates are the means
over those seeds of ``kl_to_ref`` (x) and ``positive_rate`` (y), each an ``Interval``
(:mod:`tokenpo.core.stats`) with the percentile interval of the two-level bootstrap: the seeds drawn
with replacement, then the prompts (every sample of a prompt together), on the samples every seed
has. With one seed the interval covers prompts only, which the point records (``covers``). The
bootstrap is the leaderboard's (``Intervals.bootstrapped``, its prompt draws seeded by the data), so a
result's positive rate has the leaderboard's interval divided by 100, and no interval where the
leaderboard has none. ``p_positive`` is carried along the same way. A family whose seeds' effective
β disagree (``health.seed_disagreement``) is flagged like one whose training was.

``frontier_points`` computes the points, ``pareto_front`` which of them no other beats,
``frontier_json`` / ``write_frontier_json`` write them, ``frontier_svg`` draws them as a standalone
SVG (the HTML report draws the same chart inline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from tokenpo.core.files import write_atomic
from tokenpo.core.stats import Interval
from tokenpo.leaderboards import health
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.intervals import Estimate, Intervals, mean_statistic, panels
from tokenpo.leaderboards.results import Result, read_results
from tokenpo.leaderboards.svg import PALETTE, ErrorPoint, PointSeries, scatter_chart

REWARD_METRIC = "positive_rate,none"
KL_METRIC = "kl_to_ref,none"
PROBABILITY_METRIC = "p_positive,none"
BASE_FAMILY = "base"
BASE_COLOUR = "#000000"
DIGITS = 4  # decimals of the numbers in the JSON output


def point_interval(estimate: Estimate) -> Interval:
    """The bootstrap's estimate as a point's seed-mean and interval (None for the ends it has not); ``covers``
    says what the interval resamples (``intervals.SEEDS_AND_PROMPTS``, ``PROMPTS``, …)."""
    if not estimate.has_interval:
        return Interval(estimate.value, None, None, "none", estimate.covers)
    return Interval(estimate.value, estimate.low, estimate.high, "bootstrap", estimate.covers, estimate.se)


def interval_record(interval: Interval) -> dict:
    """A point's interval as a JSON object: value, ends (4 decimals), ``ci`` (how) and ``covers``."""
    return {
        "value": _round(interval.value),
        "low": _round(interval.low),
        "high": _round(interval.high),
        "ci": interval.how,
        "covers": interval.covers,
    }


@dataclass
class FrontierPoint:
    task: str
    model: str
    family: str
    beta: float | None
    methods: list[str]  # the method labels of the results behind the point
    seeds: list[int | None]
    n_items: int | None  # doc_ids resampled (the union over seeds), else the reported item count
    kl: Interval  # seed-means with their intervals: how says bootstrap, stderr (normal, no items) or none
    reward: Interval  # positive_rate
    p_positive: Interval | None
    flags: list[dict] = field(default_factory=list)  # training-health flags, each with its "seed"
    health: str = health.UNKNOWN  # "ok", "flagged" or "unknown"
    confidence: float = 0.95  # the intervals' level

    @property
    def key(self) -> tuple:
        return (self.task, self.model, self.family, -math.inf if self.beta is None else self.beta)

    @property
    def is_base(self) -> bool:
        return self.family == BASE_FAMILY

    @property
    def flagged(self) -> bool:
        return self.health == health.FLAGGED

    @property
    def label(self) -> str:
        """What is written beside the point: its β (``base`` for the base model)."""
        if self.is_base:
            return "base"
        return "β ?" if self.beta is None else f"β={self.beta:g}"


def frontier_points(
    results: Sequence[Result | str | Path],
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[FrontierPoint]:
    """One point per ``(task, model, family, beta)`` of every result with both KL and positive rate.

    ``results`` are loaded ``Result`` objects or paths (as ``build_leaderboard`` takes them).
    Sorted by task, model, family, then β (None first). Each interval's resamples come from a
    generator seeded by ``seed`` and the point's data (``Intervals``), so a point's interval does not
    change when other results are added, and is the leaderboard's for the same results.
    """
    if not 0.5 <= confidence < 1:
        raise ResultsError(f"confidence: {confidence} is not in [0.5, 1)")
    if n_boot < 10:
        raise ResultsError(f"bootstrap: {n_boot} resamples; need at least 10 (2000 is the default)")
    loaded = [r for r in read_results(results) if r.checkpoint_step is None]
    groups: dict[tuple, list[Result]] = {}
    for result in loaded:
        family = result.family or result.method
        for task in result.tasks:
            if (task, REWARD_METRIC) in result.metrics and (task, KL_METRIC) in result.metrics:
                groups.setdefault((task, result.model, family, result.beta), []).append(result)
    intervals = Intervals(confidence, n_boot, seed)
    points = []
    for (task, model, family, beta), members in groups.items():
        runs = sorted(members, key=lambda r: (-1 if r.seed is None else r.seed, r.method))
        measure = _Measure(runs, task, intervals)
        probability = (
            measure(PROBABILITY_METRIC) if all((task, PROBABILITY_METRIC) in r.metrics for r in runs) else None
        )
        flags = [health.flag_record(flag, seed=r.seed) for r in runs for flag in r.training_health or ()]
        across = health.seed_disagreement({r.seed: r.effective_beta for r in runs})
        points.append(
            FrontierPoint(
                task=task,
                model=model,
                family=family,
                beta=beta,
                methods=sorted({r.method for r in runs}),
                seeds=[r.seed for r in runs],
                n_items=measure.n_items(REWARD_METRIC),
                kl=measure(KL_METRIC),
                reward=measure(REWARD_METRIC),
                p_positive=probability,
                flags=[health.flag_record(flag, seed=None) for flag in across] + flags,
                health=health.FLAGGED if across else health.status(r.training_health for r in runs),
                confidence=confidence,
            )
        )
    return sorted(points, key=lambda p: p.key)


class _Measure:
    """Seed-mean and interval of one metric of one point's runs."""

    def __init__(self, runs: list[Result], task: str, intervals: Intervals):
        self.runs, self.task, self.intervals = runs, task, intervals

    def n_items(self, metric: str) -> int | None:
        aligned = panels([self.runs], self.task, [metric])
        if aligned is not None:
            return aligned[0].n_items
        counts = {run.metrics[(self.task, metric)].n for run in self.runs}
        return counts.pop() if len(counts) == 1 else None

    def __call__(self, metric: str) -> Interval:
        values = [run.metrics[(self.task, metric)] for run in self.runs]
        mean = float(np.mean([v.value for v in values]))
        aligned = panels([self.runs], self.task, [metric])
        if aligned is not None:
            return point_interval(self.intervals.bootstrapped(mean_statistic(aligned[0]), mean, aligned, "bootstrap"))
        errors = [v.stderr for v in values]
        if any(e is None for e in errors):
            return Interval(mean, None, None, "none")
        se = math.sqrt(sum(e * e for e in errors)) / len(errors)
        spread = NormalDist().inv_cdf(0.5 + self.intervals.confidence / 2) * se
        return Interval(mean, mean - spread, mean + spread, "stderr", "items (reported stderrs)", se)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both counts (lower KL ``x`` and higher reward ``y``)."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


# --- JSON --------------------------------------------------------------------------------------
def _round(value: float | None, digits: int = DIGITS) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def frontier_records(points: Sequence[FrontierPoint]) -> list[dict]:
    """The points as JSON objects, ordered by task, model, family, β (see ``frontier_json``)."""
    return [
        {
            "task": p.task,
            "model": p.model,
            "family": p.family,
            "beta": p.beta,
            "base": p.is_base,
            "methods": list(p.methods),
            "seeds": list(p.seeds),
            "n_items": p.n_items,
            "confidence": p.confidence,
            "kl_to_ref": interval_record(p.kl),
            "positive_rate": interval_record(p.reward),
            "p_positive": interval_record(p.p_positive) if p.p_positive is not None else None,
            "health": p.health,
            "health_flags": [flag | {"value": _round(flag["value"], 6)} for flag in p.flags],
        }
        for p in sorted(points, key=lambda p: p.key)
    ]


def frontier_json(points: Sequence[FrontierPoint]) -> str:
    """A JSON array, one object per point (``frontier_records``), numbers rounded to 4 decimals."""
    return json.dumps(frontier_records(points), indent=1, ensure_ascii=False) + "\n"


def write_frontier_json(points: Sequence[FrontierPoint], path: str | Path) -> Path:
    """Write ``frontier_json(points)`` to ``path`` atomically."""
    return write_atomic(path, frontier_json(points))


# --- chart -------------------------------------------------------------------------------------
def family_colours(points: Sequence[FrontierPoint]) -> dict[str, str]:
    """One colour per family (sorted), the base model black."""
    families = sorted({p.family for p in points if not p.is_base})
    colours = [c for c in PALETTE if c != BASE_COLOUR]
    return {family: colours[i % len(colours)] for i, family in enumerate(families)} | {BASE_FAMILY: BASE_COLOUR}


def chart_groups(points: Sequence[FrontierPoint]) -> dict[tuple[str, str], list[FrontierPoint]]:
    """The points per ``(task, model)``: one chart each."""
    groups: dict[tuple[str, str], list[FrontierPoint]] = {}
    for point in sorted(points, key=lambda p: p.key):
        groups.setdefault((point.task, point.model), []).append(point)
    return groups


def frontier_svg(
    points: Sequence[FrontierPoint],
    task: str | None = None,
    model: str | None = None,
    standalone: bool = True,
    colours: dict[str, str] | None = None,
) -> str:
    """The frontier chart of one task and model as an SVG string (``standalone``: with its own styles).

    Each family is one colour, its points joined in order of KL and labelled with their β, with
    horizontal (KL) and vertical (positive rate) interval bars; the base model is a black
    diamond; a family whose training was flagged is drawn hollow and dashed, "(training flagged)".
    ``task`` and ``model`` pick the chart when the points hold several.
    """
    chosen = [p for p in points if (task is None or p.task == task) and (model is None or p.model == model)]
    groups = chart_groups(chosen)
    if not groups:
        raise ValueError("frontier_svg: no points" + (f" for task {task!r}" if task else ""))
    if len(groups) > 1:
        choices = ", ".join(f"{t} / {m}" for t, m in groups)
        raise ValueError(f"frontier_svg: points of several tasks or models ({choices}); pass task= and model=")
    ((task, model),) = groups
    colours = colours or family_colours(chosen)
    series = []
    by_family: dict[str, list[FrontierPoint]] = {}
    for point in groups[(task, model)]:
        by_family.setdefault(point.family, []).append(point)
    for family, members in sorted(by_family.items(), key=lambda item: (item[0] != BASE_FAMILY, item[0])):
        flagged = [p.flagged for p in members]
        suffix = " (training flagged)" if all(flagged) else " (some β flagged)" if any(flagged) else ""
        name = ("base model" if family == BASE_FAMILY else family) + suffix
        series.append(
            PointSeries(
                name=name,
                colour=colours.get(family, PALETTE[-2]),
                points=[_error_point(p) for p in sorted(members, key=lambda p: p.kl.value)],
                joined=family != BASE_FAMILY,
                dashed=all(flagged),
                marker="diamond" if family == BASE_FAMILY else "circle",
            )
        )
    title = f"{task}: positive rate vs KL" + (f" ({model})" if model else "")
    return scatter_chart(
        title, series, "KL to reference (nats)", "positive rate", standalone=standalone, kind="frontier"
    )


def _error_point(point: FrontierPoint) -> ErrorPoint:
    def text(name: str, estimate: Interval) -> str:
        bounds = estimate.bounds
        return f"{name} {estimate.value:.3g}" + (f" [{bounds[0]:.3g}, {bounds[1]:.3g}]" if bounds else "")

    seeds = ",".join(str(s) for s in point.seeds if s is not None) or "—"
    name = "base model" if point.is_base else f"{point.family} {point.label}"
    tip = (
        f"{name}: {text('KL', point.kl)}, {text('positive rate', point.reward)} "
        f"({point.confidence * 100:g}% intervals; seeds {seeds}; {point.n_items} items)"
    )
    if point.flagged:
        tip += "; training flagged: " + "; ".join(flag["problem"] for flag in point.flags)
    return ErrorPoint(
        x=point.kl.value,
        y=point.reward.value,
        x_interval=point.kl.bounds,
        y_interval=point.reward.bounds,
        label=point.label,
        tip=tip,
        hollow=point.flagged,
    )
