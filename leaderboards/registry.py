"""The headline metric of each benchmark (``benchmarks.yaml``) and the leaderboard normalisation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from leaderboards.errors import ResultsError

_KEYS = {"label": str, "tasks": list, "metrics": list, "random": (int, float), "average": bool, "note": str}
_REQUIRED = ("label", "tasks", "metrics", "random")


@dataclass(frozen=True)
class Benchmark:
    """One leaderboard column: which task(s) and metric(s) make its headline score."""

    name: str
    label: str
    tasks: tuple[str, ...]
    metrics: tuple[str, ...]
    random: float
    average: bool = True
    note: str = ""

    def normalise(self, value: float) -> float:
        return normalise(value, self.random)


def normalise(value: float, random: float) -> float:
    """Open LLM Leaderboard v2 normalisation: ``max(0, (v − random) / (1 − random)) · 100``.

    ``random`` is the score of random guessing (0.25 for 4-way multiple choice, 0 for generative
    tasks), so 0 means "no better than chance" and 100 a perfect score. Works on arrays too.
    """
    import numpy as np

    scaled = (np.asarray(value, dtype=float) - random) / (1.0 - random) * 100.0
    clipped = np.maximum(scaled, 0.0)
    return float(clipped) if clipped.ndim == 0 else clipped


def default_registry_path() -> Path:
    return Path(str(resources.files("leaderboards") / "benchmarks.yaml"))


def load_registry(path: str | Path | None = None) -> tuple[Benchmark, ...]:
    """Read and validate a benchmarks file (default: the packaged ``benchmarks.yaml``)."""
    path = Path(path) if path is not None else default_registry_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ResultsError(f"{path}: cannot read: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise ResultsError(f"{path}: invalid YAML: {error}") from error
    if (
        not isinstance(data, Mapping)
        or set(data) != {"benchmarks"}
        or not isinstance(data["benchmarks"], Mapping)
    ):
        raise ResultsError(f"{path}: expected one top-level key 'benchmarks' mapping names to entries")
    return tuple(_benchmark(path, name, entry) for name, entry in data["benchmarks"].items())


def _benchmark(path: Path, name: str, entry: object) -> Benchmark:
    where = f"{path}: benchmarks.{name}"
    if not isinstance(entry, Mapping):
        raise ResultsError(f"{where}: expected a mapping")
    for key, value in entry.items():
        if key not in _KEYS:
            raise ResultsError(f"{where}.{key}: unknown key (known: {', '.join(_KEYS)})")
        # bool is an int in Python: `random: true` must not pass as a number.
        wrong_bool = isinstance(value, bool) and _KEYS[key] is not bool
        if wrong_bool or not isinstance(value, _KEYS[key]):
            raise ResultsError(f"{where}.{key}: wrong type {type(value).__name__}")
    for key in _REQUIRED:
        if key not in entry:
            raise ResultsError(f"{where}.{key}: missing")
    for key in ("tasks", "metrics"):
        items = entry[key]
        if not items or not all(isinstance(item, str) and item for item in items):
            raise ResultsError(f"{where}.{key}: expected a non-empty list of names")
    for metric in entry["metrics"]:
        if metric.count(",") != 1:
            raise ResultsError(f"{where}.metrics: {metric!r} is not 'METRIC,FILTER' (e.g. 'acc,none')")
    random = float(entry["random"])
    if not (math.isfinite(random) and 0.0 <= random < 1.0):
        raise ResultsError(f"{where}.random: {random} is not in [0, 1)")
    return Benchmark(
        name=name,
        label=entry["label"],
        tasks=tuple(entry["tasks"]),
        metrics=tuple(entry["metrics"]),
        random=random,
        average=entry.get("average", True),
        note=entry.get("note", ""),
    )
