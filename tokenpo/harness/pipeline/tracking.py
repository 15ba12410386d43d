"""A run's evaluation in the trackers its trainings logged to: after the report, each trained model's
results and its method's leaderboard row go to ``training.report_to`` as one tracker run per trained model
(``NAME-seedS-evaluation``), filed under the pipeline's name beside the trainings' runs.

Scalars, at the model's final training step:

- ``eval/TASK/METRIC,FILTER``: every number of every result the model has (``eval/LABEL/…/results.json``
  and its win rate), stderrs left out;
- ``leaderboard/BENCHMARK`` and ``leaderboard/Δ BENCHMARK``: its method's row, the normalised score (mean
  over the method's seeds) and the difference to the baseline, as the leaderboard prints them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from tokenpo.harness.pipeline.config import RunConfig, method_training
from tokenpo.leaderboards.board import Leaderboard
from tokenpo.trainers.trackers import log_scalars


def result_scalars(results: Iterable[Path]) -> dict[str, float]:
    """``eval/TASK/METRIC`` for every finite number of the results' tasks (stderrs left out)."""
    scalars = {}
    for path in results:
        for task, metrics in json.loads(path.read_text())["results"].items():
            for key, value in metrics.items():
                if "," in key and "_stderr" not in key and isinstance(value, int | float) and math.isfinite(value):
                    scalars[f"eval/{task}/{key}"] = float(value)
    return scalars


def leaderboard_scalars(board: Leaderboard, method: str) -> dict[str, float]:
    """``leaderboard/LABEL`` and ``leaderboard/Δ LABEL`` of ``method``'s row (every model it was trained from)."""
    scalars = {}
    for row in board.rows:
        if row.method != method:
            continue
        for benchmark in board.benchmarks:
            cell = row.cells.get(benchmark.name)
            if cell is None:
                continue
            scalars[f"leaderboard/{benchmark.label}"] = cell.score.value
            if cell.delta is not None and math.isfinite(cell.delta.value):
                scalars[f"leaderboard/Δ {benchmark.label}"] = cell.delta.value
    return {key: value for key, value in scalars.items() if math.isfinite(value)}


def log_evaluations(config: RunConfig, source: str, output: Path, board: Leaderboard) -> list[str]:
    """Each finished training's evaluation to its ``training.report_to`` trackers; the runs logged."""
    logged = []
    for index, run in enumerate(config.methods):
        report_to = method_training(config, index, source).report_to
        for seed in run.seeds if report_to else ():
            label = f"{run.name}-seed{seed}"
            done = output / "train" / label / "DONE"
            if not done.is_file():
                continue
            evaluated = output / "eval" / label
            results = [evaluated / kind / "results.json" for kind in ("sentiment", "benchmarks")]
            results.append(output / "winrate" / label / "results.json")
            scalars = result_scalars(p for p in results if p.is_file()) | leaderboard_scalars(board, run.name)
            if scalars:
                steps = json.loads(done.read_text())["steps"]
                name = f"{label}-evaluation"
                log_scalars(report_to, output / "train" / label, name, config.name, scalars, step=steps)
                logged.append(name)
    return logged
