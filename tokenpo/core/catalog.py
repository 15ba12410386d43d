"""The benchmark catalog (``catalog.yaml``): each benchmark declared once, read by every package.

A :class:`Benchmark` says where its offline data comes from (:class:`Mirror`), which official
lm-eval task files run it, and which metric of which task is its headline score, with the score
of random guessing. ``harness data prepare`` and ``harness eval`` read the first two, the
leaderboard the rest; nothing else declares a benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tokenpo.core.config import ConfigError, field_error, load_config


class CatalogError(ConfigError):
    """A benchmarks file is unreadable or malformed: ``FILE: benchmarks.NAME.KEY: problem``."""


@dataclass(frozen=True)
class Mirror:
    """The offline copy of a hub dataset: a folder of the shared benchmarks directory."""

    folder: str = field(default="", metadata={"help": "the benchmark's folder under the shared benchmarks directory"})
    hub_id: str = field(
        default="",
        metadata={"help": "the hub dataset it stands for; a prepared folder holds HUB_ID/CONFIG/SPLIT.jsonl"},
    )
    differs: str = field(
        default="", metadata={"help": "how the offline data differs from the hub's (empty when identical)"}
    )

    def __post_init__(self) -> None:
        for name in ("folder", "hub_id"):
            if not getattr(self, name):
                raise field_error(name, "missing")
        object.__setattr__(self, "differs", " ".join(self.differs.split()))  # YAML's folded lines, one line


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
    # The score itself compares a model with the baseline (a win rate): the baseline's row shows the
    # reference instead of a score of its own, and no Δ is taken.
    versus_baseline: bool = False

    @property
    def is_column(self) -> bool:
        """Whether it has a headline score (a leaderboard column) or is data only."""
        return bool(self.metrics)


@dataclass(frozen=True)
class _Entry:
    """A benchmark as ``catalog.yaml`` declares it; absent keys are None where absence matters."""

    label: str | None = field(default=None, metadata={"help": "column heading"})
    data: Mirror | None = field(default=None, metadata={"help": "the offline mirror (optional)"})
    task_files: tuple[str, ...] | None = field(
        default=None, metadata={"help": "the official lm-eval task files that run it, relative to lm_eval/tasks"}
    )
    tasks: tuple[str, ...] | None = field(
        default=None, metadata={"help": "task names whose results make the headline score; the first present is used"}
    )
    metrics: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "METRIC,FILTER keys as in results.json, averaged; none: data only, not a column"},
    )
    # Any, checked below: the catalog's message names the wrong type (YAML's `true` is no score).
    random: Any = field(default=None, metadata={"help": "the score of random guessing, in [0, 1)"})
    average: bool = field(default=True, metadata={"help": "whether it counts in the leaderboard's average"})
    note: str = field(default="", metadata={"help": "what the headline choice is, shown under the table"})
    versus_baseline: bool = field(
        default=False,
        metadata={
            "help": "the score compares a model with the baseline (a win rate): the baseline's row shows "
            "'reference', no Δ is taken"
        },
    )

    def __post_init__(self) -> None:
        if self.label is None:
            raise field_error("label", "missing")
        if self.random is not None:
            if isinstance(self.random, bool) or not isinstance(self.random, int | float):
                raise field_error("random", f"wrong type {type(self.random).__name__}")
            object.__setattr__(self, "random", float(self.random))
        for name in ("task_files", "tasks", "metrics"):
            names = getattr(self, name)
            if names is not None and (not names or not all(names)):
                raise field_error(name, "expected a non-empty list of names")
        if self.metrics is not None:
            for name in ("tasks", "random"):
                if getattr(self, name) is None:
                    raise field_error(name, "missing")
            for metric in self.metrics:
                if metric.count(",") != 1:
                    raise field_error("metrics", f"{metric!r} is not 'METRIC,FILTER' (e.g. 'acc,none')")
        elif self.data is None:
            raise ValueError("neither metrics (a leaderboard column) nor data (a mirror)")
        if self.random is not None and not (math.isfinite(self.random) and 0.0 <= self.random < 1.0):
            raise field_error("random", f"{self.random} is not in [0, 1)")

    def benchmark(self, name: str) -> Benchmark:
        return Benchmark(
            name=name,
            label=self.label or "",
            tasks=self.tasks or (),
            metrics=self.metrics or (),
            random=self.random if self.random is not None else 0.0,
            average=self.average,
            note=self.note,
            data=self.data,
            task_files=self.task_files or (),
            versus_baseline=self.versus_baseline,
        )


@dataclass(frozen=True)
class _CatalogFile:
    benchmarks: dict[str, _Entry] = field(metadata={"help": "benchmark names to their entries, in column order"})


def packaged_path() -> Path:
    return Path(str(resources.files("tokenpo.core") / "catalog.yaml"))


def load_catalog(path: str | Path | None = None) -> tuple[Benchmark, ...]:
    """Read and validate a catalog file (default: the packaged ``catalog.yaml``), in file order."""
    catalog = load_config(_CatalogFile, path if path is not None else packaged_path(), error=CatalogError)
    return tuple(entry.benchmark(name) for name, entry in catalog.benchmarks.items())


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


def markdown(catalog: tuple[Benchmark, ...]) -> str:
    """``docs/catalog.md``: the catalog as a page (``python -m tokenpo.core.catalog > docs/catalog.md``)."""
    lines = [
        "# The benchmark catalog",
        "",
        "<!-- Generated from tokenpo/core/catalog.yaml by `python -m tokenpo.core.catalog > docs/catalog.md`;",
        "     tests/test_catalog.py fails when it is stale. Edit the YAML, not this page. -->",
        "",
        "Each benchmark is declared once, in `tokenpo/core/catalog.yaml`: `harness data prepare` reads its",
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
