"""Read training run folders: ``metrics.jsonl`` (curves) and ``token_scores.jsonl`` (token pictures)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from leaderboards.errors import ResultsError
from leaderboards.files import finite_number, json_lines

SIDES = ("chosen", "rejected")


@dataclass(frozen=True)
class TokenScores:
    """One completion of a training pair, each token with its mask or weight (per score kind)."""

    example: int
    side: str
    method: str
    tokens: tuple[str, ...]
    scores: dict[str, tuple[float, ...]]


@dataclass
class TrainingRun:
    path: Path
    name: str
    method: str | None
    metrics: pd.DataFrame  # one row per optimiser step; columns as logged (TRL's names)
    token_scores: list[TokenScores] = field(default_factory=list)


def load_runs(paths: Sequence[str | Path]) -> list[TrainingRun]:
    return [load_run(path) for path in paths]


def load_run(path: str | Path) -> TrainingRun:
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: not a training run folder")
    metrics_file, scores_file = path / "metrics.jsonl", path / "token_scores.jsonl"
    if not metrics_file.is_file() and not scores_file.is_file():
        raise ResultsError(f"{path}: neither metrics.jsonl nor token_scores.jsonl inside")
    metrics = (
        pd.DataFrame.from_records(list(_metric_rows(metrics_file)))
        if metrics_file.is_file()
        else pd.DataFrame()
    )
    scores = list(_token_scores(scores_file)) if scores_file.is_file() else []
    return TrainingRun(
        path=path, name=path.name, method=_method(path / "config.yaml"), metrics=metrics, token_scores=scores
    )


def _method(config: Path) -> str | None:
    if not config.is_file():
        return None
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ResultsError(f"{config}: cannot read: {error}") from error
    method = data.get("method") if isinstance(data, dict) else None
    if isinstance(method, dict):
        method = method.get("name")
    return method if isinstance(method, str) else None


def _metric_rows(path: Path) -> Iterator[dict]:
    for number, row in json_lines(path):
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            raise ResultsError(f"{path}:{number}: step: missing or not an integer")
        # Non-numeric values (a phase name, NaN from a diverged step) are not plotted.
        yield {key: value for key, value in row.items() if finite_number(value) is not None}


def _token_scores(path: Path) -> Iterator[TokenScores]:
    for number, row in json_lines(path):
        where = f"{path}:{number}"
        example, side, method, tokens, scores = (
            row.get(k) for k in ("example", "side", "method", "tokens", "scores")
        )
        if isinstance(example, bool) or not isinstance(example, int):
            raise ResultsError(f"{where}: example: missing or not an integer")
        if side not in SIDES:
            raise ResultsError(f"{where}: side: expected 'chosen' or 'rejected', got {side!r}")
        if not isinstance(method, str):
            raise ResultsError(f"{where}: method: missing or not a string")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ResultsError(f"{where}: tokens: expected a list of strings")
        if not isinstance(scores, dict) or not scores:
            raise ResultsError(f"{where}: scores: expected an object of score lists")
        for kind, values in scores.items():
            if not isinstance(values, list) or not all(finite_number(v) is not None for v in values):
                raise ResultsError(f"{where}: scores.{kind}: expected a list of numbers")
            if len(values) != len(tokens):
                raise ResultsError(f"{where}: scores.{kind}: {len(values)} values for {len(tokens)} tokens")
        yield TokenScores(
            example, side, method, tuple(tokens), {k: tuple(map(float, v)) for k, v in scores.items()}
        )
