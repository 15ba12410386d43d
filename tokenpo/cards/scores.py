"""A model's evaluation on its card: its leaderboard row against the baseline, the hub's model-index
entries of it, and the notes on the data it was evaluated on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult

from tokenpo.cards.errors import CardError
from tokenpo.core.catalog import Benchmark, load_catalog
from tokenpo.leaderboards.board import Leaderboard, Row
from tokenpo.leaderboards.formatting import fmt_delta, fmt_interval, fmt_score
from tokenpo.leaderboards.results import Result, read_results
from tokenpo.leaderboards.table import build_leaderboard

SOURCE = "tokenpo-harness (lm-evaluation-harness task files)"


@dataclass(frozen=True)
class CardScores:
    board: Leaderboard
    row: Row  # the model's row
    baseline: Row | None  # the baseline's row (None when the model is the baseline, or none was given)

    @property
    def level(self) -> str:
        return f"{self.board.confidence * 100:g}%"


def card_scores(
    results: Sequence[Result | str | Path], baseline: Sequence[Result | str | Path] = (), baseline_method: str = "dpo"
) -> CardScores:
    """The leaderboard of the model's ``results`` and the ``baseline``'s (result folders or files), and the
    model's row of it: the same numbers as any leaderboard holding both (each interval has its own
    random stream). The model is the one method of ``results``."""
    mine, theirs = read_results(results), read_results(baseline)
    methods = sorted({(r.model, r.method) for r in mine})
    if len(methods) != 1:
        given = ", ".join(f"{method} ({model})" for model, method in methods) or "none"
        raise CardError(f"--results: give the evaluations of one model; these hold {given}")
    if theirs:
        baseline_method = theirs[0].method
    board = build_leaderboard([*mine, *theirs], baseline=baseline_method)
    row = next(r for r in board.rows if (r.model, r.method) == methods[0])
    base = next((r for r in board.rows if r.is_baseline and r is not row), None)
    return CardScores(board, row, base)


def score_table(scores: CardScores) -> str:
    """Markdown: per benchmark the raw headline metric, the normalised score with its interval and the
    difference to the baseline with its paired interval; the average last."""
    base = scores.baseline.method if scores.baseline is not None else None
    head = ["benchmark", "task", "metric", "items", "raw", f"score [{scores.level} CI]"]
    if base is not None:
        head.append(f"Δ vs {base} [{scores.level} paired CI]")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for benchmark in scores.board.benchmarks:
        cell = scores.row.cells.get(benchmark.name)
        if cell is None:
            continue
        items = _items(scores.row, cell.task)
        cells = [benchmark.label, cell.task, "+".join(benchmark.metrics), items, f"{100 * cell.raw:.2f}",
                 f"{fmt_score(cell.score, cell.score_sd)} {fmt_interval(cell.score)}"]  # fmt: skip
        if base is not None:
            cells.append(fmt_delta(cell.delta))
        lines.append("| " + " | ".join(cells) + " |")
    if scores.row.average is not None:
        cells = ["average", "", "", "", "", f"{fmt_score(scores.row.average)} {fmt_interval(scores.row.average)}"]
        if base is not None:
            cells.append(fmt_delta(scores.row.average_delta))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_index(scores: CardScores, catalog: Sequence[Benchmark] | None = None) -> list[EvalResult]:
    """The hub's model-index entries: one per benchmark evaluated on its whole test set that stands for a
    hub dataset (raw headline metric × 100, self-reported). Slices (``--limit``) stay in the card's table
    only, where their item counts show: the hub would list a score of 1 item as the benchmark's."""
    hub = {b.name: b.data.hub_id for b in catalog or load_catalog() if b.data is not None and b.data.hub_id}
    entries = []
    for benchmark in scores.board.benchmarks:
        cell = scores.row.cells.get(benchmark.name)
        if cell is None or benchmark.name not in hub or _is_slice(scores.row, cell.task):
            continue
        shots = next((run.n_shot.get(cell.task) for run in scores.row.runs if cell.task in run.n_shot), None)
        entries.append(
            EvalResult(
                task_type="text-generation",
                task_name="Text Generation",
                dataset_type=hub[benchmark.name],
                dataset_name=f"{benchmark.label} ({cell.task})",
                dataset_split="test",
                dataset_args={"num_few_shot": shots} if isinstance(shots, int) else None,
                metric_type="+".join(m.split(",")[0] for m in benchmark.metrics),
                metric_value=round(100 * cell.raw, 2),
                metric_name=f"{'+'.join(benchmark.metrics)} ({_items(scores.row, cell.task)} items)",
                source_name=SOURCE,
                source_url="https://github.com/EleutherAI/lm-evaluation-harness",
            )
        )
    return entries


def data_notes(scores: CardScores) -> list[str]:
    """Where the evaluation's data came from (the offline mirror and how it differs from the hub's),
    and which benchmarks ran on a slice."""
    notes: list[str] = []
    for run in scores.row.runs:
        source = run.harness.get("data_source")
        if source and f"data source: {source}" not in notes:
            notes.append(f"data source: {source}")
        for benchmark, note in sorted((run.harness.get("data_notes") or {}).items()):
            line = f"{benchmark}: {note}"
            if line not in notes:
                notes.append(line)
    for benchmark in scores.board.benchmarks:
        cell = scores.row.cells.get(benchmark.name)
        if cell is not None and _is_slice(scores.row, cell.task):
            items = _items(scores.row, cell.task)
            notes.append(f"{benchmark.label}: a slice of {items} items, not the whole test set: a smoke check, "
                         "not a measurement; left out of the model-index metadata")  # fmt: skip
    return notes


def _n_samples(row: Row, task: str) -> tuple[int, int] | None:
    """(evaluated, in the task) item counts of ``task`` (a group: summed over its tasks) in the row's
    first result that has them."""
    for run in row.runs:
        counts = [run.n_samples.get(leaf) for leaf in run.subtasks.get(task) or (task,)]
        if counts and all(c is not None for c in counts):
            return sum(c[0] for c in counts), sum(c[1] for c in counts)  # type: ignore[index]
    return None


def _is_slice(row: Row, task: str) -> bool:
    counts = _n_samples(row, task)
    return counts is not None and counts[0] < counts[1]


def _items(row: Row, task: str) -> str:
    counts = _n_samples(row, task)
    if counts is None:
        cell_n = next((c.n for c in row.cells.values() if c.task == task), None)
        return str(cell_n) if cell_n is not None else "—"
    effective, original = counts
    return str(effective) if effective == original else f"{effective} of {original}"
