"""The regression gate: did a candidate drop on any task metric, beyond a tolerance, significantly?

Per task metric both results report, with Δ = candidate − baseline oriented so that positive is
better (lm-eval's ``higher_is_better``) and measured in points (0.01 of the metric, i.e.
percentage points for accuracies):

- with per-item scores in both: a paired z-test on the items both share. The standard error is
  ``sd(ψ_cand − ψ_base)/√n`` over per-item influences ψ (the delta method, which for a plain mean
  is the per-item score minus the mean), so the items' shared difficulty cancels; for 0/1 scores
  this is the large-sample McNemar test. Items are the unit, also for metrics scored per part of an
  item (IFEval's instruction level). With hundreds of items the normal approximation is accurate;
  for n < 30 the line is marked.
- otherwise: the unpaired z-test from the reported stderrs, ``se = √(se_b² + se_c²)``, which
  ignores the pairing and so is conservative; the line says so.

A metric is flagged when H0 "Δ ≥ −max_drop" is rejected: p = 2·Φ((Δ + max_drop)/se) (the two-sided
convention, so a flag means the (1−α) interval lies entirely below −max_drop), Holm-adjusted over
all metrics tested so that many metrics do not raise the chance of a false alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.results import Result
from tokenpo.leaderboards.stat_rules import DropTest, drop_test, holm, paired_se

POINTS = 100.0  # one point = 0.01 of the metric


@dataclass
class Comparison:
    task: str
    metric: str
    higher_is_better: bool
    baseline: float
    candidate: float
    how: str  # "paired z", "stderr z (no per-item scores)", "untested: …"
    n: int | None  # items the test used (shared items for the paired test)
    test: DropTest | None = None  # in points, oriented (positive = better)
    p_adjusted: float | None = None
    regressed: bool = False

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "REGRESSED"
        if self.test is None:
            return "untested"
        if self.test.high < 0:
            return "worse"
        if self.test.low > 0:
            return "better"
        return "same"


@dataclass
class RegressReport:
    baseline: Result
    candidate: Result
    max_drop: float
    alpha: float
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.regressed for c in self.comparisons)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def compare(
    baseline: Result,
    candidate: Result,
    max_drop: float = 0.0,
    alpha: float = 0.05,
    tasks: list[str] | None = None,
    all_tasks: bool = False,
) -> RegressReport:
    """Test every metric of the baseline's tasks (top-level ones unless ``all_tasks``) for a drop.

    ``max_drop`` is in points. A task or metric the baseline has and the candidate lacks is bad
    input (``ResultsError``): a gate must not pass because a benchmark vanished.
    """
    if not 0 < alpha < 1:
        raise ResultsError(f"alpha: {alpha} is not in (0, 1)")
    if not (math.isfinite(max_drop) and max_drop >= 0):
        raise ResultsError(f"max-drop: {max_drop} must be a number ≥ 0 (points)")
    report = RegressReport(baseline, candidate, max_drop, alpha)
    chosen = baseline.tasks if all_tasks else baseline.top_level_tasks
    if tasks:
        unknown = sorted(set(tasks) - set(baseline.tasks))
        if unknown:
            raise ResultsError(f"--tasks: {', '.join(unknown)} not in the baseline {baseline.source}")
        chosen = [task for task in baseline.tasks if task in tasks]
    keys = [(task, metric) for (task, metric) in sorted(baseline.metrics) if task in chosen]
    missing = [f"{task} {metric}" for task, metric in keys if (task, metric) not in candidate.metrics]
    if missing:
        raise ResultsError(f"{candidate.source}: lacks what the baseline has: {', '.join(missing)}")
    for task, metric in keys:
        report.comparisons.append(_compare_metric(report, task, metric))
    tested = [c for c in report.comparisons if c.test is not None]
    for comparison, p_adjusted in zip(tested, holm([c.test.p_value for c in tested]), strict=True):
        comparison.p_adjusted = p_adjusted
        comparison.regressed = p_adjusted < alpha
    extra = sorted(set(candidate.top_level_tasks) - set(baseline.tasks))
    if extra:
        report.notes.append(f"not gated (the baseline lacks them): {', '.join(extra)}")
    report.notes.extend(baseline.notes + candidate.notes)
    return report


def _compare_metric(report: RegressReport, task: str, metric: str) -> Comparison:
    base, cand = report.baseline, report.candidate
    higher = base.is_higher_better(task, metric)
    if higher is None:
        higher = True
        report.notes.append(f"{task} {metric}: direction unknown (no higher_is_better); assumed higher is better")
    sign = 1.0 if higher else -1.0
    base_value, cand_value = base.metrics[(task, metric)], cand.metrics[(task, metric)]
    comparison = Comparison(task, metric, higher, base_value.value, cand_value.value, how="", n=None)
    base_items, cand_items = base.items.get((task, metric)), cand.items.get((task, metric))
    shared = sorted(set(base_items.keys) & set(cand_items.keys)) if base_items and cand_items else []
    if len(shared) >= 2:
        b, c = base_items.take(shared), cand_items.take(shared)
        delta = sign * (c[0].sum() / c[1].sum() - b[0].sum() / b[1].sum()) * POINTS
        se = paired_se(b, c) * POINTS
        comparison.test = drop_test(delta, se, report.max_drop, report.alpha)
        comparison.n = len(shared)
        comparison.how = "paired z" + (" (n<30)" if len(shared) < 30 else "")
        if len(shared) < max(len(base_items.keys), len(cand_items.keys)):
            report.notes.append(
                f"{task} {metric}: paired on the {len(shared)} shared items "
                f"(baseline {len(base_items.keys)}, candidate {len(cand_items.keys)})"
            )
        return comparison
    if base_value.stderr is not None and cand_value.stderr is not None:
        delta = sign * (cand_value.value - base_value.value) * POINTS
        se = math.hypot(base_value.stderr, cand_value.stderr) * POINTS
        comparison.test = drop_test(delta, se, report.max_drop, report.alpha)
        comparison.n = cand_value.n
        comparison.how = "stderr z (no shared items)" if base_items and cand_items else "stderr z (no per-item scores)"
        return comparison
    comparison.how = "untested: no per-item scores and no stderr"
    report.notes.append(f"{task} {metric}: untested (no per-item scores in both and no stderr)")
    return comparison


def format_report(report: RegressReport) -> str:
    """A plain-text table of what moved, largest drop first, and the verdict."""
    level = round((1 - report.alpha) * 100, 2)
    lines = [
        f"baseline:  {report.baseline.source}",
        f"candidate: {report.candidate.source}",
        f"gate: a metric fails when it dropped by more than {report.max_drop:g} points with Holm-adjusted "
        f"p < {report.alpha:g},",
        f"      i.e. its {level:g}% interval lies entirely below {-report.max_drop or 0:g}",
        "      intervals cover items: two evaluations of one model are compared, so no training seed varies",
        "",
    ]
    header = (
        "task",
        "metric",
        "baseline",
        "candidate",
        "Δ points",
        f"{level:g}% CI",
        "p (Holm)",
        "n",
        "test",
        "verdict",
    )
    table = [header]

    def order(c: Comparison) -> tuple:
        return (c.test is None, c.test.delta if c.test else 0.0, c.task, c.metric)

    for c in sorted(report.comparisons, key=order):
        t = c.test
        table.append(
            (
                c.task,
                c.metric + ("" if c.higher_is_better else " (lower is better)"),
                f"{c.baseline:.4f}",
                f"{c.candidate:.4f}",
                f"{t.delta:+.2f}" if t else "",
                f"[{t.low:+.2f}, {t.high:+.2f}]" if t else "",
                f"{c.p_adjusted:.3g}" if c.p_adjusted is not None else "",
                "" if c.n is None else str(c.n),
                c.how,
                c.verdict,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    lines += [f"note: {note}" for note in report.notes]
    failed = [c for c in report.comparisons if c.regressed]
    verdict = (
        f"FAIL: {len(failed)} metric(s) regressed: " + ", ".join(f"{c.task} {c.metric}" for c in failed)
        if failed
        else f"PASS: no metric dropped by more than {report.max_drop:g} points significantly"
    )
    lines += ["", verdict]
    return "\n".join(lines)
