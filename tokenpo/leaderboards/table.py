"""Build the leaderboard from results: the tidy table of every reported number, then the rows.

One leaderboard row per ``(model, method)``; its seeds aggregate to mean ± sd. Each cell is a
benchmark's headline score, normalised as the Open LLM Leaderboard v2 does, with a confidence
interval, and its difference to the baseline row (a method, ``dpo`` by default) with a paired
bootstrap interval over the items both share (computed in ``intervals``). Where the items cannot
support an interval (too few, or no variation: ``stat_rules.why_no_interval``) there is none, no
significance, and the reason instead. Anything missing or mismatched becomes a note. The rows,
cells and notes built here are the classes of ``board``.

Why one module: the builder's steps (cells, Δ to the baseline, averages, notes) share one pass over the
results and its record of what is missing or mismatched; apart, each would work out again which items
two rows share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tokenpo.core import progress
from tokenpo.leaderboards import health
from tokenpo.leaderboards.board import Cell, Leaderboard, Row, SmokeCheck
from tokenpo.leaderboards.columns import Benchmark, load_columns, normalised_score
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.intervals import (
    NO_ITEM_DATA,
    Estimate,
    Intervals,
    difference_statistic,
    panels,
    reported_stderr,
    score_statistic,
)
from tokenpo.leaderboards.matched import matched_kl
from tokenpo.leaderboards.results import Result, read_results
from tokenpo.leaderboards.stat_rules import MIN_ITEMS_FOR_INTERVAL
from tokenpo.leaderboards.tidy import tidy_table
from tokenpo.leaderboards.verdicts import DEFAULT_MARGIN


def build_leaderboard(
    results: Sequence[Result | str | Path],
    baseline: str = "dpo",
    benchmarks: Sequence[Benchmark] | str | Path | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    margin: float = DEFAULT_MARGIN,
) -> Leaderboard:
    """Build the leaderboard of ``results`` (loaded ``Result`` objects or paths) against ``baseline``.

    ``benchmarks`` are the columns (default: those of the packaged catalog, ``catalog.yaml``). Intervals are
    percentile intervals of the two-level bootstrap over training seeds and prompts (``n_boot``
    resamples, ``seed``) when per-item scores exist, else normal intervals from the reported stderr;
    each says what it covers. ``margin`` is the equivalence margin of the verdicts, in the headline
    metric's units (0.05: five points). Results of checkpoints evaluated on the way make the runs'
    paths (matched-KL verdicts), not rows.
    """
    if not 0.5 <= confidence < 1:
        raise ResultsError(f"confidence: {confidence} is not in [0.5, 1)")
    if n_boot < 10:
        raise ResultsError(f"bootstrap: {n_boot} resamples; need at least 10 (2000 is the default)")
    if not 0 < margin < 1:
        raise ResultsError(f"equivalence margin: {margin} is not in (0, 1) (0.05 is the default)")
    loaded = read_results(results)
    if not loaded:
        raise ResultsError("no results given")
    known_columns = (
        benchmarks if isinstance(benchmarks, Sequence) and not isinstance(benchmarks, str) else load_columns(benchmarks)
    )
    builder = _Builder(loaded, baseline, list(known_columns), confidence, n_boot, seed, margin)
    board = builder.build()
    board.n_boot, board.seed = n_boot, seed
    return board


class _Builder:
    def __init__(self, results, baseline, known_columns, confidence, n_boot, seed, margin):
        self.results = results
        self.finals = [r for r in results if r.checkpoint_step is None]
        self.baseline = baseline
        self.known_columns = known_columns
        self.confidence = confidence
        self.margin = margin
        self.intervals = Intervals(confidence, n_boot, seed)
        self.notes: list[str] = []

    def build(self) -> Leaderboard:
        rows = self._rows()
        columns = [b for b in self.known_columns if any(b.name in row.cells for row in rows)]
        self._note_unregistered(rows)
        smoke = self._smoke_checks(rows, columns)
        columns = [b for b in columns if b.name not in {check.benchmark.name for check in smoke}]
        self._note_mismatches(rows, columns)
        for row in rows:
            row.row_flags = health.seed_disagreement({run.seed: run.effective_beta for run in row.runs})
        with progress.task("leaderboard", total=len(rows) * len(columns), unit="cell") as cells:
            for row in rows:
                for benchmark in columns:
                    if benchmark.name in row.cells:
                        row.cells[benchmark.name].score = self._score(row, benchmark)
                    cells.advance()
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
        flags = {(row.model, row.method): row.problems() for row in rows}
        verdicts = matched_kl(
            self.results,
            self.baseline,
            self.intervals,
            self.margin,
            flagged=lambda model, method: flags.get((model, method)),
            notes=self.notes,
        )
        checkpoints = len(self.results) - len(self.finals)
        if checkpoints:
            self.notes.append(
                f"{checkpoints} result(s) of checkpoints evaluated on the way: in the runs' paths "
                "(matched-KL verdicts, the report's curves), not in the table"
            )
        notes = self._health_notes(rows) + [note for r in self.results for note in r.notes] + self.notes
        return Leaderboard(
            columns,
            rows,
            tidy_table(self.results),
            notes,
            self.baseline,
            self.confidence,
            list(self.results),
            margin=self.margin,
            verdicts=verdicts,
            smoke=smoke,
        )

    def _smoke_checks(self, rows: list[Row], columns: list[Benchmark]) -> list[SmokeCheck]:
        """Benchmarks every row ran on fewer items than an interval needs: run, listed, not compared.

        Their cells leave the rows (the raw values stay in the tidy table and the check's record): a
        column of "+0.0 (no interval: 1 item)" beside the judge that carries the comparison only hides it.
        """
        checks = []
        for benchmark in columns:
            present = [row for row in rows if benchmark.name in row.cells]
            counts = [
                _items_per_task(run, row.cells[benchmark.name])
                for row in present
                for run in row.runs_for[benchmark.name]
            ]
            if counts and all(n is not None and n < MIN_ITEMS_FOR_INTERVAL for n in counts):
                raw = {row.label: row.cells[benchmark.name].raw for row in present}
                checks.append(SmokeCheck(benchmark, max(counts), raw))
                for row in rows:
                    row.cells.pop(benchmark.name, None)
                    row.runs_for.pop(benchmark.name, None)
        return checks

    # --- rows and cells -------------------------------------------------------------------------
    def _rows(self) -> list[Row]:
        grouped: dict[tuple[str, str], Row] = {}
        for result in sorted(self.finals, key=lambda r: (r.model, r.method, -1 if r.seed is None else r.seed)):
            row = grouped.setdefault((result.model, result.method), Row(result.model, result.method, []))
            row.runs.append(result)
            row.is_baseline = result.method == self.baseline
        rows = []
        for row in grouped.values():
            for benchmark in self.known_columns:
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
                f"{benchmark.label}: {row.label} seeds {missing} lack it; mean over seeds {[r.seed for r in present]}"
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
                self.notes.append(f"{benchmark.label}: {run.label} has task {task} but not {missing_metrics}; left out")
                return None
            raws.append(float(np.mean([run.metrics[(task, m)].value for m in benchmark.metrics])))
        scores = [normalised_score(raw, benchmark.random) for raw in raws]
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

    # --- intervals and averages -----------------------------------------------------------------
    def _score(self, row: Row, benchmark: Benchmark) -> Estimate:
        cell = row.cells[benchmark.name]
        runs = row.runs_for[benchmark.name]
        aligned = panels([runs], cell.task, benchmark.metrics)
        if aligned is not None:
            return self.intervals.bootstrapped(
                score_statistic(aligned[0], benchmark), cell.score.value, aligned, "bootstrap"
            )
        se = reported_stderr(runs, cell.task, benchmark)
        seeds = _training_seeds(runs)
        if se is None:
            self.notes.append(f"{benchmark.label}: {row.label} has neither per-item scores nor stderr; no interval")
            return Estimate.without_interval(cell.score.value, NO_ITEM_DATA, seeds=seeds)
        # A normalised score is never below 0, nor is its interval.
        return self.intervals.from_stderr(cell.score.value, se, cell.n, seeds, floor=0.0)

    def _average(self, row: Row, columns: list[Benchmark]) -> None:
        averaged = [b for b in columns if b.average]
        missing = [b.label for b in averaged if b.name not in row.cells]
        if not averaged:
            return
        if missing:
            self.notes.append(f"average: {row.label} lacks {missing}; no average shown for it")
            return
        cells = [row.cells[b.name] for b in averaged]
        row.average = self.intervals.mean({b.label: cell.score for b, cell in zip(averaged, cells, strict=True)})
        per_seed = [
            np.mean(
                [
                    normalised_score(
                        np.mean([run.metrics[(row.cells[b.name].task, m)].value for m in b.metrics]), b.random
                    )
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
                row.average_delta = self.intervals.mean(labelled)

    def _delta(self, row: Row, base: Row, benchmark: Benchmark) -> None:
        cell, base_cell = row.cells[benchmark.name], base.cells[benchmark.name]
        if cell.task != base_cell.task:
            self.notes.append(
                f"{benchmark.label}: {row.label} ran {cell.task}, {base.label} ran {base_cell.task}; no delta"
            )
            return
        runs, base_runs = row.runs_for[benchmark.name], base.runs_for[benchmark.name]
        aligned = panels([runs, base_runs], cell.task, benchmark.metrics)
        if aligned is not None:
            mine, theirs = aligned
            cell.delta = self.intervals.bootstrapped(
                difference_statistic(mine, theirs, benchmark),
                mine.point(benchmark.random) - theirs.point(benchmark.random),
                aligned,
                "paired bootstrap",
            )
            n_shared = cell.n_shared = mine.n_items
            if cell.n is not None and base_cell.n is not None and n_shared < max(cell.n, base_cell.n):
                self.notes.append(
                    f"{benchmark.label}: {row.label} vs {base.label}: delta on the {n_shared} shared items "
                    f"(of {cell.n} and {base_cell.n})"
                )
            if mine.trained and theirs.trained and mine.seeds != theirs.seeds:
                self.notes.append(
                    f"{benchmark.label}: {row.label} (seeds {list(mine.seeds)}) and {base.label} (seeds "
                    f"{list(theirs.seeds)}) do not share their seeds: their seeds are drawn apart, not paired"
                )
            return
        se, base_se = (
            reported_stderr(runs, cell.task, benchmark),
            reported_stderr(base_runs, cell.task, benchmark),
        )
        value = cell.score.value - base_cell.score.value
        seeds = min((s for s in (_training_seeds(runs), _training_seeds(base_runs)) if s is not None), default=None)
        if se is None or base_se is None:
            cell.delta = Estimate.without_interval(value, NO_ITEM_DATA, seeds=seeds)
            return
        counts = [n for n in (cell.n, base_cell.n) if n is not None]
        spread = math.sqrt(se * se + base_se * base_se)
        cell.delta = self.intervals.from_stderr(value, spread, min(counts, default=None), seeds)
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
                    "are computed, but against a baseline whose training was flagged"
                )
            else:
                notes.append(
                    f"{health.MARKER} {row.label}: training flagged; listed after the ranked "
                    f"rows of {row.model}, not ranked"
                )
            for flag in row.row_flags:
                notes.append(f"{health.MARKER} training health: {row.label}, across its seeds: {health.describe(flag)}")
            for run in row.runs:
                for flag in run.training_health or ():
                    notes.append(f"{health.MARKER} training health: {run.label}: {health.describe(flag)}")
        return notes

    def _note_unregistered(self, rows: list[Row]) -> None:
        known = {task for b in self.known_columns for task in b.tasks}
        inner = {t for r in self.results for children in r.subtasks.values() for t in children}
        others = sorted({t for r in self.results for t in r.top_level_tasks if t not in known and t not in inner})
        if others:
            self.notes.append(f"tasks not in the benchmark catalog (tidy table only): {', '.join(others)}")

    def _note_mismatches(self, rows: list[Row], columns: list[Benchmark]) -> None:
        for benchmark in columns:
            lacking = [
                row.label
                for row in rows
                if benchmark.name not in row.cells and not (row.is_baseline and benchmark.versus_baseline)
            ]
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
                    f"{benchmark.label}: n-shot differs: " + ", ".join(f"{label} {s}" for label, s in shots.items())
                )


def _training_seeds(runs: Sequence[Result]) -> int | None:
    """How many training seeds the runs hold; None when none of them was trained (the base model)."""
    return len(runs) if any(run.trained for run in runs) else None


def _items_per_task(run: Result, cell: Cell) -> int | None:
    """Items a run answered per task of the cell: the most of any subtask for a group (MMLU at ``--limit 1``
    answers one item in each of 57 subjects: a smoke check, though 57 items in all)."""
    leaves = run.subtasks.get(cell.task) or (cell.task,)
    counts = [run.n_samples[leaf][0] for leaf in leaves if leaf in run.n_samples]
    return max(counts) if counts else cell.n
