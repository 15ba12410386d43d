"""The benchmark catalog (``benchmarks.yaml``): each benchmark declared once, read by every room.

A :class:`Benchmark` says where its offline data comes from (:class:`Mirror`), which official
lm-eval task files run it, and which metric of which task is its headline score, with the score
of random guessing. ``harness data prepare`` and ``harness eval`` read the first two, the
leaderboard the rest; nothing else declares a benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from tokenpo.core.errors import UserError


class CatalogError(UserError, ValueError):
    """A benchmarks file is unreadable or malformed: ``FILE: benchmarks.NAME.KEY: problem``."""


@dataclass(frozen=True)
class Mirror:
    """The offline copy of a hub dataset: a folder of the shared benchmarks directory."""

    folder: str  # the benchmark's folder under the shared benchmarks directory
    hub_id: str  # the hub dataset it stands for; a prepared folder holds HUB_ID/CONFIG/SPLIT.jsonl
    differs: str = ""  # how the offline data differs from the hub's (empty when identical)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its data, the task files that run it, and its headline score."""

    name: str
    label: str
    tasks: tuple[str, ...] = ()  # task names whose results make the headline, the first present used
    metrics: tuple[str, ...] = ()  # "METRIC,FILTER" keys; several are averaged; none: not a column
    random: float = 0.0  # the score of random guessing, for the leaderboard's normalisation
    average: bool = True  # whether it counts in the leaderboard's average
    note: str = ""  # what the headline choice is, shown under the table
    data: Mirror | None = None
    task_files: tuple[str, ...] = ()  # official lm-eval task files, relative to lm_eval/tasks

    @property
    def is_column(self) -> bool:
        """Whether it has a headline score (a leaderboard column) or is data only."""
        return bool(self.metrics)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "label": str,
    "tasks": list,
    "metrics": list,
    "random": (int, float),
    "average": bool,
    "note": str,
    "data": dict,
    "task_files": list,
}
_MIRROR_TYPES: dict[str, type] = {"folder": str, "hub_id": str, "differs": str}
_REQUIRED_FOR_A_COLUMN = ("tasks", "random")


def packaged_path() -> Path:
    return Path(str(resources.files("tokenpo.core") / "benchmarks.yaml"))


def load_catalog(path: str | Path | None = None) -> tuple[Benchmark, ...]:
    """Read and validate a benchmarks file (default: the packaged ``benchmarks.yaml``), in file order."""
    path = Path(path) if path is not None else packaged_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CatalogError(f"{path}: cannot read: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: invalid YAML: {error}") from error
    if not isinstance(data, Mapping) or set(data) != {"benchmarks"} or not isinstance(data["benchmarks"], Mapping):
        raise CatalogError(f"{path}: expected one top-level key 'benchmarks' mapping names to entries")
    return tuple(
        _benchmark(f"{path}: benchmarks.{name}", str(name), entry) for name, entry in data["benchmarks"].items()
    )


def columns(catalog: tuple[Benchmark, ...]) -> tuple[Benchmark, ...]:
    """The benchmarks with a headline score, in catalog order."""
    return tuple(b for b in catalog if b.is_column)


def mirrored(catalog: tuple[Benchmark, ...]) -> dict[str, Benchmark]:
    """The benchmarks with offline data, by name."""
    return {b.name: b for b in catalog if b.data is not None}


def headlines(catalog: tuple[Benchmark, ...], tasks: Iterable[str]) -> dict[str, dict[str, object]]:
    """For each column one of ``tasks`` scores: which task and metrics make its headline, and its random score."""
    present = set(tasks)
    chosen = {}
    for benchmark in columns(catalog):
        task = next((t for t in benchmark.tasks if t in present), None)
        if task is not None:
            chosen[benchmark.name] = {"task": task, "metrics": list(benchmark.metrics), "random": benchmark.random}
    return chosen


def _check_types(where: str, entry: Mapping, types: Mapping[str, type | tuple[type, ...]]) -> None:
    for key, value in entry.items():
        if key not in types:
            raise CatalogError(f"{where}.{key}: unknown key (known: {', '.join(types)})")
        # bool is an int in Python: `random: true` must not pass as a number.
        wrong_bool = isinstance(value, bool) and types[key] is not bool
        if wrong_bool or not isinstance(value, types[key]):
            raise CatalogError(f"{where}.{key}: wrong type {type(value).__name__}")


def _names(where: str, key: str, items: list) -> tuple[str, ...]:
    if not items or not all(isinstance(item, str) and item for item in items):
        raise CatalogError(f"{where}.{key}: expected a non-empty list of names")
    return tuple(items)


def _benchmark(where: str, name: str, entry: object) -> Benchmark:
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where}: expected a mapping")
    _check_types(where, entry, _TYPES)
    if "label" not in entry:
        raise CatalogError(f"{where}.label: missing")
    if "metrics" in entry:
        for key in _REQUIRED_FOR_A_COLUMN:
            if key not in entry:
                raise CatalogError(f"{where}.{key}: missing")
    elif "data" not in entry:
        raise CatalogError(f"{where}: neither metrics (a leaderboard column) nor data (a mirror)")
    metrics = _names(where, "metrics", entry["metrics"]) if "metrics" in entry else ()
    for metric in metrics:
        if metric.count(",") != 1:
            raise CatalogError(f"{where}.metrics: {metric!r} is not 'METRIC,FILTER' (e.g. 'acc,none')")
    random = float(entry.get("random", 0.0))
    if not (math.isfinite(random) and 0.0 <= random < 1.0):
        raise CatalogError(f"{where}.random: {random} is not in [0, 1)")
    return Benchmark(
        name=name,
        label=entry["label"],
        tasks=_names(where, "tasks", entry["tasks"]) if "tasks" in entry else (),
        metrics=metrics,
        random=random,
        average=entry.get("average", True),
        note=entry.get("note", ""),
        data=_mirror(f"{where}.data", entry["data"]) if "data" in entry else None,
        task_files=_names(where, "task_files", entry["task_files"]) if "task_files" in entry else (),
    )


def _mirror(where: str, entry: Mapping) -> Mirror:
    _check_types(where, entry, _MIRROR_TYPES)
    for key in ("folder", "hub_id"):
        if not entry.get(key):
            raise CatalogError(f"{where}.{key}: missing")
    return Mirror(folder=entry["folder"], hub_id=entry["hub_id"], differs=" ".join(entry.get("differs", "").split()))


def markdown(catalog: tuple[Benchmark, ...]) -> str:
    """``docs/benchmarks.md``: the catalog as a page (``python -m tokenpo.core.catalog > docs/benchmarks.md``)."""
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated from tokenpo/core/benchmarks.yaml by `python -m tokenpo.core.catalog > docs/benchmarks.md`;",
        "     tests/test_catalog.py fails when it is stale. Edit the YAML, not this page. -->",
        "",
        "Each benchmark is declared once, in `tokenpo/core/benchmarks.yaml`: `harness data prepare` reads its",
        "offline data, `harness eval` its official lm-eval task files, `harness leaderboard` its headline",
        "metric and random score. Leaderboard scores are normalised as the Open LLM Leaderboard v2,",
        "`max(0, (v − random)/(1 − random))·100`.",
        "",
        "## Leaderboard columns",
        "",
        "| column | tasks (first present is used) | headline metric | random | in the average |",
        "|---|---|---|---|---|",
    ]
    for b in columns(catalog):
        metrics = " and ".join(f"`{m}`" for m in b.metrics) + (" (mean)" if len(b.metrics) > 1 else "")
        tasks = ", ".join(f"`{t}`" for t in b.tasks)
        lines.append(f"| {b.label} | {tasks} | {metrics} | {b.random:g} | {'yes' if b.average else 'no'} |")
    lines += ["", *(f"- {b.note}" for b in columns(catalog) if b.note), "", "## Offline data", ""]
    lines += [
        "| benchmark | hub dataset | folder | official task files | how it differs from the hub |",
        "|---|---|---|---|---|",
    ]
    for b in catalog:
        if b.data is None:
            continue
        files = ", ".join(f"`{f}`" for f in b.task_files) or "none (data for the code judge)"
        differs = b.data.differs or "identical"
        lines.append(f"| {b.label} | `{b.data.hub_id}` | `{b.data.folder}` | {files} | {differs} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(load_catalog()), end="")
