"""What a built leaderboard holds: rows of benchmark cells (scores with intervals, deltas to the
baseline, verdicts), the matched-KL verdicts, the benchmarks run only as smoke checks, the tidy table
and the notes; and the one-line-per-cell frame its csv and json are made of."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tokenpo.leaderboards import health
from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.intervals import Estimate, Intervals
from tokenpo.leaderboards.matched import MatchedKL, matched_kl
from tokenpo.leaderboards.results import Result
from tokenpo.leaderboards.verdicts import DEFAULT_MARGIN, Verdict, verdict


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
    row_flags: list[dict] = field(default_factory=list)  # flags across its seeds (seed_disagreement)

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]

    @property
    def health(self) -> dict[int | None, list[dict]]:
        """Per seed, the training-health flags of the runs that carry some (empty: nothing flagged)."""
        return {run.seed: flags for run in self.runs if (flags := run.training_health)}

    @property
    def flagged(self) -> bool:
        """A run of this row did not train properly, or its seeds disagree: listed after the ranked rows, marked."""
        return bool(self.health) or bool(self.row_flags)

    @property
    def health_status(self) -> str:
        """``flagged``, ``ok`` (every run checked, none flagged) or ``unknown``."""
        if self.row_flags:
            return health.FLAGGED
        return health.status(run.training_health for run in self.runs)

    def health_records(self) -> list[dict]:
        """Every flag as ``{"seed", "metric", "value", "problem"}`` (seed null: a flag across the seeds)."""
        return [health.flag_record(flag, seed=None) for flag in self.row_flags] + [
            health.flag_record(flag, seed=seed) for seed, flags in self.health.items() for flag in flags
        ]

    def problems(self) -> str | None:
        """The row's training-health flags in one short line, ``seed 1: mask/u_chosen_mean = 5.24; …`` (None:
        none); the notes and ``health.json`` say what each means."""
        several = len(self.runs) > 1
        parts = [f"{flag['metric']} = {flag['value']:.3g} across seeds" for flag in self.row_flags]
        for seed, flags in self.health.items():
            prefix = f"seed {seed}: " if several and seed is not None else ""
            parts += [prefix + health.describe(flag).split(":")[0] for flag in flags]
        return "; ".join(parts) or None

    @property
    def label(self) -> str:
        return f"{self.method} ({self.model})"


@dataclass(frozen=True)
class SmokeCheck:
    """A benchmark every row ran on fewer items than an interval needs: listed as run, not compared."""

    benchmark: Benchmark
    items: int  # the most items a run answered per task (per subtask of a group)
    raw: dict[str, float]  # row label → raw headline value (mean over seeds)

    def record(self) -> dict:
        return {
            "benchmark": self.benchmark.name,
            "label": self.benchmark.label,
            "items": self.items,
            "metrics": list(self.benchmark.metrics),
            "raw": self.raw,
        }


@dataclass
class Leaderboard:
    benchmarks: list[Benchmark]  # the columns, in catalog order
    rows: list[Row]
    tidy: pd.DataFrame
    notes: list[str]
    baseline: str
    confidence: float
    results: list[Result] = field(default_factory=list)  # what the board was built from (for the report)
    n_boot: int = 2000
    seed: int = 0
    margin: float = DEFAULT_MARGIN  # equivalence margin, in the headline metrics' units
    verdicts: list[MatchedKL] = field(default_factory=list)  # each method at the baseline's KL
    smoke: list[SmokeCheck] = field(default_factory=list)  # benchmarks run on too few items to compare

    @property
    def has_average(self) -> bool:
        """Whether any column counts in the average (the sentiment judge alone does not: no average column)."""
        return any(benchmark.average for benchmark in self.benchmarks)

    def cell_verdict(self, row: Row, delta: Estimate | None, random: float | None) -> Verdict:
        """The verdict of a Δ cell: the margin in normalised points of its benchmark (None: an average)."""
        points = None if random is None else self.margin * 100.0 / (1.0 - random)
        base = self.baseline_row(row)
        problems = "; ".join(p for p in (row.problems(), base.problems() if base is not None else None) if p)
        return verdict(delta, points, problems or None)

    def verdicts_on(self, reward_metric: str) -> list[MatchedKL]:
        """The matched-KL verdicts read on another metric of the judge (e.g. ``p_positive,none``, a secondary
        endpoint): the same paths, baseline, margin, health flags and bootstrap settings as ``verdicts``."""
        flags = {(row.model, row.method): row.problems() for row in self.rows}
        return matched_kl(
            self.results,
            self.baseline,
            Intervals(self.confidence, self.n_boot, self.seed),
            self.margin,
            flagged=lambda model, method: flags.get((model, method)),
            reward_metric=reward_metric,
        )

    def baseline_row(self, row: Row) -> Row | None:
        return next((r for r in self.rows if r.is_baseline and r.model == row.model), None) or next(
            (r for r in self.rows if r.is_baseline), None
        )

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
                    | _verdict_columns(self.cell_verdict(row, cell.delta, cell.benchmark.random), cell.delta)
                    | {"n_shared": cell.n_shared}
                )
            if row.average is not None:
                records.append(
                    base
                    | {"benchmark": "average", "task": None, "metric": None, "raw": None, "n": None}
                    | _estimate_columns("score", row.average)
                    | {"score_sd": row.average_sd}
                    | _estimate_columns("delta", row.average_delta)
                    | _verdict_columns(self.cell_verdict(row, row.average_delta, None), row.average_delta)
                    | {"n_shared": None}
                )
        return pd.DataFrame.from_records(records)


def _verdict_columns(found: Verdict, delta: Estimate | None) -> dict:
    """``verdict`` and ``verdict_reason`` of a Δ (none for the baseline row)."""
    if delta is None:
        return {"verdict": None, "verdict_reason": None}
    return {"verdict": found.word, "verdict_reason": found.reason}


def _estimate_columns(prefix: str, estimate: Estimate | None) -> dict:
    """``PREFIX``, its interval (``_low``, ``_high``), how it was computed (``_ci``), what it covers
    (``_covers``), the training seeds behind it (``_seeds``) and, when it has no interval, why
    (``_no_interval``); for Δ also whether it is ``significant``."""
    if estimate is None:
        return {
            prefix: None,
            f"{prefix}_low": None,
            f"{prefix}_high": None,
            f"{prefix}_ci": None,
            f"{prefix}_covers": None,
            f"{prefix}_seeds": None,
            f"{prefix}_no_interval": None,
        }
    columns = {
        prefix: estimate.value,
        f"{prefix}_low": estimate.low,
        f"{prefix}_high": estimate.high,
        f"{prefix}_ci": estimate.how,
        f"{prefix}_covers": estimate.covers,
        f"{prefix}_seeds": estimate.seeds,
        f"{prefix}_no_interval": estimate.no_interval,
    }
    if prefix == "delta":
        columns["significant"] = estimate.significant
    return columns
