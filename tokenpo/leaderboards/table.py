"""The tidy results table and the leaderboard built from it.

One leaderboard row per ``(model, method)``; its seeds aggregate to mean ± sd. Each cell is a
benchmark's headline score, normalised as the Open LLM Leaderboard v2 does, with a confidence
interval, and its difference to the baseline row (a method, ``dpo`` by default) with a paired
bootstrap interval over the items both share. Where the items cannot support an interval (too few,
or no variation: ``stats.why_no_interval``) there is none, no significance, and the reason instead.
Anything missing or mismatched becomes a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tokenpo.leaderboards import health
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.registry import Benchmark, load_registry, normalise
from tokenpo.leaderboards.results import ItemScores, Result, read_results
from tokenpo.leaderboards.stats import (
    bootstrap,
    mean_influence,
    percentile_interval,
    ratio_on,
    why_no_interval,
    why_no_interval_over,
)

TIDY_COLUMNS = ["model", "method", "seed", "task", "metric", "value", "stderr", "n", "source"]
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


@dataclass
class Cell:
    """One benchmark of one leaderboard row."""

    benchmark: Benchmark
    task: str
    seeds: list[int | None]
    raw: float  # headline metric, mean over seeds
    score: Estimate  # normalised score, mean over seeds
    score_sd: float | None  # sd over seeds (None with one seed)
    n: int | None
    delta: Estimate | None = None  # score − baseline's score
    n_shared: int | None = None


@dataclass
class Row:
    model: str
    method: str
    runs: list[Result]
    cells: dict[str, Cell] = field(default_factory=dict)
    runs_for: dict[str, list[Result]] = field(default_factory=dict)  # benchmark → the seeds that ran it
    average: Estimate | None = None
    average_sd: float | None = None
    average_delta: Estimate | None = None
    is_baseline: bool = False
    baseline_flagged: bool = False  # its deltas are against a baseline row whose training was flagged

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]

    @property
    def health(self) -> dict[int | None, list[dict]]:
        """Per seed, the training-health flags of the runs that carry some (empty: nothing flagged)."""
        return {run.seed: flags for run in self.runs if (flags := run.training_health)}

    @property
    def flagged(self) -> bool:
        """A run of this row did not train properly: the row is listed after the ranked rows, marked."""
        return bool(self.health)

    @property
    def health_status(self) -> str:
        """``flagged``, ``ok`` (every run checked, none flagged) or ``unknown``."""
        return health.status(run.training_health for run in self.runs)

    def health_records(self) -> list[dict]:
        """Every flag as ``{"seed", "metric", "value", "problem"}``."""
        return [health.flag_record(flag, seed=seed) for seed, flags in self.health.items() for flag in flags]

    @property
    def label(self) -> str:
        return f"{self.method} ({self.model})"


@dataclass
class Leaderboard:
    benchmarks: list[Benchmark]  # the columns, in registry order
    rows: list[Row]
    tidy: pd.DataFrame
    notes: list[str]
    baseline: str
    confidence: float
    results: list[Result] = field(default_factory=list)  # what the board was built from (for the report)
    n_boot: int = 2000
    seed: int = 0

    def frame(self) -> pd.DataFrame:
        """One line per row and benchmark (plus ``benchmark == "average"``), for csv/json."""
        records = []
        for row in self.rows:
            base = {
                "model": row.model,
                "method": row.method,
                "seeds": ",".join(str(s) for s in row.seeds if s is not None),
                "health": row.health_status,
                "health_flags": "; ".join(
                    f"seed {seed}: {health.describe(flag)}" if seed is not None else health.describe(flag)
                    for seed, flags in row.health.items()
                    for flag in flags
                ),
                "baseline_flagged": row.baseline_flagged,
            }
            for cell in row.cells.values():
                records.append(
                    base
                    | {
                        "benchmark": cell.benchmark.name,
                        "task": cell.task,
                        "metric": "+".join(cell.benchmark.metrics),
                        "raw": cell.raw,
                        "n": cell.n,
                    }
                    | _estimate_columns("score", cell.score)
                    | {"score_sd": cell.score_sd}
                    | _estimate_columns("delta", cell.delta)
                    | {"n_shared": cell.n_shared}
                )
            if row.average is not None:
                records.append(
                    base
                    | {"benchmark": "average", "task": None, "metric": None, "raw": None, "n": None}
                    | _estimate_columns("score", row.average)
                    | {"score_sd": row.average_sd}
                    | _estimate_columns("delta", row.average_delta)
                    | {"n_shared": None}
                )
        return pd.DataFrame.from_records(records)


def _estimate_columns(prefix: str, estimate: Estimate | None) -> dict:
    """``PREFIX``, its interval (``_low``, ``_high``), how it was computed (``_ci``) and, when it
    has no interval, why (``_no_interval``); for Δ also whether it is ``significant``."""
    if estimate is None:
        return {
            prefix: None,
            f"{prefix}_low": None,
            f"{prefix}_high": None,
            f"{prefix}_ci": None,
            f"{prefix}_no_interval": None,
        }
    columns = {
        prefix: estimate.value,
        f"{prefix}_low": estimate.low,
        f"{prefix}_high": estimate.high,
        f"{prefix}_ci": estimate.how,
        f"{prefix}_no_interval": estimate.no_interval,
    }
    if prefix == "delta":
        columns["significant"] = estimate.significant
    return columns


def tidy_table(results: Iterable[Result]) -> pd.DataFrame:
    """One line per run, task and metric: model, method, seed, task, metric, value, stderr, n, source."""
    records = [
        {
            "model": r.model,
            "method": r.method,
            "seed": r.seed,
            "task": task,
            "metric": metric,
            "value": v.value,
            "stderr": v.stderr,
            "n": v.n,
            "source": r.source,
        }
        for r in results
        for (task, metric), v in sorted(r.metrics.items())
    ]
    frame = pd.DataFrame.from_records(records, columns=TIDY_COLUMNS)
    return frame.astype({"seed": "Int64", "n": "Int64"})


def build_leaderboard(
    results: Sequence[Result | str | Path],
    baseline: str = "dpo",
    benchmarks: Sequence[Benchmark] | str | Path | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Leaderboard:
    """Build the leaderboard of ``results`` (loaded ``Result`` objects or paths) against ``baseline``.

    ``benchmarks`` is a registry (default: the packaged ``benchmarks.yaml``). Intervals are
    percentile bootstrap intervals over items (``n_boot`` resamples, ``seed``) when per-item
    scores exist, else normal intervals from the reported stderr; each says which.
    """
    if not 0.5 <= confidence < 1:
        raise ResultsError(f"confidence: {confidence} is not in [0.5, 1)")
    if n_boot < 10:
        raise ResultsError(f"bootstrap: {n_boot} resamples; need at least 10 (2000 is the default)")
    loaded = read_results(results)
    if not loaded:
        raise ResultsError("no results given")
    registry = (
        benchmarks
        if isinstance(benchmarks, Sequence) and not isinstance(benchmarks, str)
        else load_registry(benchmarks)
    )
    builder = _Builder(loaded, baseline, list(registry), confidence, n_boot, np.random.default_rng(seed))
    board = builder.build()
    board.n_boot, board.seed = n_boot, seed
    return board


class _Builder:
    def __init__(self, results, baseline, registry, confidence, n_boot, rng):
        self.results = results
        self.baseline = baseline
        self.registry = registry
        self.confidence = confidence
        self.z = NormalDist().inv_cdf(0.5 + confidence / 2)
        self.n_boot = n_boot
        self.rng = rng
        self.notes: list[str] = []

    def build(self) -> Leaderboard:
        rows = self._rows()
        columns = [b for b in self.registry if any(b.name in row.cells for row in rows)]
        self._note_unregistered(rows)
        self._note_mismatches(rows, columns)
        progress = tqdm(
            total=len(rows) * len(columns), desc="leaderboard", unit="cell", disable=None, leave=False
        )
        for row in rows:
            for benchmark in columns:
                if benchmark.name in row.cells:
                    row.cells[benchmark.name].score = self._score(row, benchmark)
                progress.update()
        progress.close()
        for row in rows:
            self._average(row, columns)
        self._deltas(rows, columns)
        # The baseline first, then the ranked rows, then rows whose training was flagged (not ranked).
        rows.sort(
            key=lambda r: (
                r.model,
                not r.is_baseline,
                r.flagged,
                -(r.average.value if r.average else -math.inf),
            )
        )
        notes = self._health_notes(rows) + [note for r in self.results for note in r.notes] + self.notes
        return Leaderboard(
            columns, rows, tidy_table(self.results), notes, self.baseline, self.confidence, list(self.results)
        )

    # --- rows and cells -------------------------------------------------------------------------
    def _rows(self) -> list[Row]:
        grouped: dict[tuple[str, str], Row] = {}
        for result in sorted(
            self.results, key=lambda r: (r.model, r.method, -1 if r.seed is None else r.seed)
        ):
            row = grouped.setdefault((result.model, result.method), Row(result.model, result.method, []))
            row.runs.append(result)
            row.is_baseline = result.method == self.baseline
        rows = []
        for row in grouped.values():
            for benchmark in self.registry:
                cell = self._cell(row, benchmark)
                if cell is not None:
                    row.cells[benchmark.name] = cell
            if row.cells:
                rows.append(row)
            else:  # e.g. a judge-only result (sentiment): its numbers stay in the tidy table
                self.notes.append(f"{row.label}: none of the leaderboard's benchmarks (tidy table only)")
        return rows

    def _task_of(self, run: Result, benchmark: Benchmark) -> str | None:
        return next((task for task in benchmark.tasks if task in run.tasks), None)

    def _cell(self, row: Row, benchmark: Benchmark) -> Cell | None:
        tasks = {run.seed: self._task_of(run, benchmark) for run in row.runs}
        present = [run for run in row.runs if tasks[run.seed] is not None]
        if not present:
            return None
        if len(present) < len(row.runs):
            missing = [run.seed for run in row.runs if tasks[run.seed] is None]
            self.notes.append(
                f"{benchmark.label}: {row.label} seeds {missing} lack it; "
                f"mean over seeds {[r.seed for r in present]}"
            )
        names = {tasks[run.seed] for run in present}
        if len(names) > 1:
            self.notes.append(
                f"{benchmark.label}: {row.label} seeds use different tasks {sorted(names)}; not aggregated"
            )
            return None
        task = names.pop()
        raws = []
        for run in present:
            missing_metrics = [m for m in benchmark.metrics if (task, m) not in run.metrics]
            if missing_metrics:
                self.notes.append(
                    f"{benchmark.label}: {run.label} has task {task} but not {missing_metrics}; left out"
                )
                return None
            raws.append(float(np.mean([run.metrics[(task, m)].value for m in benchmark.metrics])))
        scores = [normalise(raw, benchmark.random) for raw in raws]
        row.runs_for[benchmark.name] = present
        counts = {run.metrics[(task, benchmark.metrics[0])].n for run in present}
        return Cell(
            benchmark=benchmark,
            task=task,
            seeds=[run.seed for run in present],
            raw=float(np.mean(raws)),
            score=Estimate(float(np.mean(scores)), math.nan, math.nan, math.nan, "none"),
            score_sd=float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
            n=counts.pop() if len(counts) == 1 else None,
        )

    # --- item-level scores ----------------------------------------------------------------------
    def _item_scores(self, run: Result, task: str, benchmark: Benchmark) -> list[ItemScores] | None:
        parts = [run.items.get((task, metric)) for metric in benchmark.metrics]
        return parts if all(part is not None for part in parts) else None

    def _aligned(self, runs: list[Result], task: str, benchmark: Benchmark):
        """Per run, per metric ``(num, den)`` on the items all runs share; None without samples."""
        per_run = [self._item_scores(run, task, benchmark) for run in runs]
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

    def _row_score_fn(self, aligned, benchmark: Benchmark):
        """idx ↦ seed-mean normalised headline score on each resample."""

        def score(idx: np.ndarray) -> np.ndarray:
            per_seed = [
                normalise(np.mean([ratio_on(num, den, idx) for num, den in parts], axis=0), benchmark.random)
                for parts in aligned
            ]
            return np.mean(per_seed, axis=0)

        return score

    def _stderr_of(self, runs: list[Result], task: str, benchmark: Benchmark) -> float | None:
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

    def _score(self, row: Row, benchmark: Benchmark) -> Estimate:
        cell = row.cells[benchmark.name]
        runs = row.runs_for[benchmark.name]
        aligned, _ = self._aligned(runs, cell.task, benchmark)
        if aligned is not None:
            return self._bootstrapped(
                self._row_score_fn(aligned, benchmark), cell.score.value, mean_influence(aligned), "bootstrap"
            )
        se = self._stderr_of(runs, cell.task, benchmark)
        if se is None:
            self.notes.append(
                f"{benchmark.label}: {row.label} has neither per-item scores nor stderr; no interval"
            )
            return Estimate.without_interval(cell.score.value, NO_ITEM_DATA)
        # A normalised score is never below 0, nor is its interval.
        return self._from_stderr(cell.score.value, se, cell.n, floor=0.0)

    def _bootstrapped(
        self, statistic: Callable[[np.ndarray], np.ndarray], value: float, per_item: np.ndarray, how: str
    ) -> Estimate:
        """``value`` with the percentile-bootstrap interval of ``statistic`` over items, unless
        ``per_item`` (each item's contribution: its score, or for a Δ its paired difference) cannot
        support an interval (``why_no_interval``)."""
        # Resampled even when the interval is withheld: the random stream, hence every other cell's
        # interval, stays what it would be without the rule.
        samples = bootstrap(statistic, per_item.size, self.n_boot, self.rng)
        reason = why_no_interval_over(per_item)
        if reason is not None:
            return Estimate.without_interval(value, reason)
        low, high = percentile_interval(samples, self.confidence)
        return Estimate(value, low, high, float(samples.std(ddof=1)), how, samples)

    def _from_stderr(self, value: float, se: float, n_items: int | None, floor: float = -math.inf) -> Estimate:
        """``value`` ± z·``se`` (the normal interval; its low end no less than ``floor``), unless
        ``n_items`` items with standard error ``se`` cannot support an interval (``why_no_interval``)."""
        reason = why_no_interval(n_items, se)
        if reason is not None:
            return Estimate.without_interval(value, reason)
        return Estimate(value, max(floor, value - self.z * se), value + self.z * se, se, "stderr")

    def _average(self, row: Row, columns: list[Benchmark]) -> None:
        averaged = [b for b in columns if b.average]
        missing = [b.label for b in averaged if b.name not in row.cells]
        if not averaged:
            return
        if missing:
            self.notes.append(f"average: {row.label} lacks {missing}; no average shown for it")
            return
        cells = [row.cells[b.name] for b in averaged]
        row.average = _mean_estimate(
            {b.label: cell.score for b, cell in zip(averaged, cells, strict=True)}, self.confidence, self.z
        )
        per_seed = [
            np.mean(
                [
                    normalise(np.mean([run.metrics[(row.cells[b.name].task, m)].value for m in b.metrics]), b.random)
                    for b in averaged
                ]
            )
            for run in row.runs
            if all((row.cells[b.name].task, b.metrics[0]) in run.metrics for b in averaged)
        ]
        row.average_sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None

    # --- deltas to the baseline -----------------------------------------------------------------
    def _deltas(self, rows: list[Row], columns: list[Benchmark]) -> None:
        baselines = {row.model: row for row in rows if row.is_baseline}
        if not baselines:
            self.notes.append(f"no {self.baseline!r} row: no deltas (pick another with --baseline)")
            return
        for row in rows:
            base = baselines.get(row.model)
            if base is None and len(baselines) == 1:
                base = next(iter(baselines.values()))
                self.notes.append(f"{row.label}: deltas against the only baseline, {base.label}")
            if base is None:
                self.notes.append(f"{row.label}: no {self.baseline!r} row for model {row.model}; no deltas")
                continue
            if row is base:
                continue
            row.baseline_flagged = base.flagged
            for benchmark in columns:
                if benchmark.name in row.cells and benchmark.name in base.cells:
                    self._delta(row, base, benchmark)
            averaged = [b for b in columns if b.average]
            deltas = [row.cells[b.name].delta if b.name in row.cells else None for b in averaged]
            if row.average is not None and base.average is not None and all(d is not None for d in deltas):
                labelled = {b.label: delta for b, delta in zip(averaged, deltas, strict=True)}
                row.average_delta = _mean_estimate(labelled, self.confidence, self.z)

    def _delta(self, row: Row, base: Row, benchmark: Benchmark) -> None:
        cell, base_cell = row.cells[benchmark.name], base.cells[benchmark.name]
        if cell.task != base_cell.task:
            self.notes.append(
                f"{benchmark.label}: {row.label} ran {cell.task}, {base.label} ran {base_cell.task}; no delta"
            )
            return
        runs, base_runs = row.runs_for[benchmark.name], base.runs_for[benchmark.name]
        aligned, n_shared = self._aligned(runs + base_runs, cell.task, benchmark)
        if aligned is not None:
            mine, theirs = aligned[: len(runs)], aligned[len(runs) :]
            score, base_score = self._row_score_fn(mine, benchmark), self._row_score_fn(theirs, benchmark)

            def difference(idx: np.ndarray) -> np.ndarray:
                return score(idx) - base_score(idx)

            full = np.arange(n_shared)[None, :]
            paired_differences = mean_influence(mine) - mean_influence(theirs)
            cell.delta = self._bootstrapped(
                difference, float(difference(full)[0]), paired_differences, "paired bootstrap"
            )
            cell.n_shared = n_shared
            if cell.n is not None and base_cell.n is not None and n_shared < max(cell.n, base_cell.n):
                self.notes.append(
                    f"{benchmark.label}: {row.label} vs {base.label}: delta on the {n_shared} shared items "
                    f"(of {cell.n} and {base_cell.n})"
                )
            return
        se, base_se = (
            self._stderr_of(runs, cell.task, benchmark),
            self._stderr_of(base_runs, cell.task, benchmark),
        )
        value = cell.score.value - base_cell.score.value
        if se is None or base_se is None:
            cell.delta = Estimate.without_interval(value, NO_ITEM_DATA)
            return
        counts = [n for n in (cell.n, base_cell.n) if n is not None]
        spread = math.sqrt(se * se + base_se * base_se)
        cell.delta = self._from_stderr(value, spread, min(counts, default=None))
        if cell.delta.has_interval:  # without one, the cell itself says why
            self.notes.append(
                f"{benchmark.label}: {row.label} vs {base.label}: no shared per-item scores; "
                "unpaired interval from the reported stderrs"
            )

    # --- notes ----------------------------------------------------------------------------------
    def _health_notes(self, rows: list[Row]) -> list[str]:
        notes = []
        for row in rows:
            if not row.flagged:
                continue
            if row.is_baseline:
                notes.append(
                    f"{health.MARKER} baseline {row.label} is flagged by training health: the deltas against it "
                    "are computed, but against a baseline that did not train"
                )
            else:
                notes.append(
                    f"{health.MARKER} {row.label}: training flagged (did not train); listed after the ranked "
                    f"rows of {row.model}, not ranked"
                )
            for run in row.runs:
                for flag in run.training_health or ():
                    notes.append(f"{health.MARKER} training health: {run.label}: {health.describe(flag)}")
        return notes

    def _note_unregistered(self, rows: list[Row]) -> None:
        known = {task for b in self.registry for task in b.tasks}
        inner = {t for r in self.results for children in r.subtasks.values() for t in children}
        others = sorted(
            {t for r in self.results for t in r.top_level_tasks if t not in known and t not in inner}
        )
        if others:
            self.notes.append(f"tasks not in the benchmarks registry (tidy table only): {', '.join(others)}")

    def _note_mismatches(self, rows: list[Row], columns: list[Benchmark]) -> None:
        for benchmark in columns:
            lacking = [row.label for row in rows if benchmark.name not in row.cells]
            if lacking:
                self.notes.append(f"{benchmark.label}: missing for {', '.join(lacking)}")
            present = [row for row in rows if benchmark.name in row.cells]
            counts = {row.label: row.cells[benchmark.name].n for row in present}
            if len(set(counts.values())) > 1:
                self.notes.append(
                    f"{benchmark.label}: item counts differ: "
                    + ", ".join(f"{label} {n}" for label, n in counts.items())
                )
            shots = {}
            for row in present:
                for run in row.runs_for[benchmark.name]:
                    shots[run.label] = run.n_shot.get(row.cells[benchmark.name].task)
            if len({str(s) for s in shots.values()}) > 1:
                self.notes.append(
                    f"{benchmark.label}: n-shot differs: "
                    + ", ".join(f"{label} {s}" for label, s in shots.items())
                )


def _mean_estimate(parts: dict[str, Estimate], confidence: float, z: float) -> Estimate:
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
        low, high = percentile_interval(samples, confidence)
        how = "paired bootstrap" if any(e.how == "paired bootstrap" for e in estimates) else "bootstrap"
        return Estimate(value, low, high, float(samples.std(ddof=1)), how, samples)
    se = math.sqrt(sum(e.se**2 for e in estimates)) / len(estimates)
    return Estimate(value, value - z * se, value + z * se, se, "stderr")
