"""Sweeps: a grid over method and training keys (and seeds) that expands into named method runs.

``sweep: {grid: {method.beta: [0.05, 0.1], training.learning_rate: [5e-7, 1e-6]}, seeds: [0, 1]}``
turns every swept entry of ``methods`` into one entry per grid point, named after the values
(``dpo-beta0.05-learning_rate5e-07``), each trained once per seed. The expanded runs are ordinary
``methods`` entries: the pipeline, its fingerprints and resume, and the leaderboard (rows per
method, mean ± sd over seeds; the β frontier per method family) see nothing else.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from tokenpo.core.config import field_error

SWEEPABLE = ("method", "training")  # the parts of a methods[] entry a grid key may set


@dataclass
class SweepConfig:
    """A grid over keys of the methods' entries; every combination is a run of its own."""

    grid: dict[str, list[Any]] = field(
        default_factory=dict,
        metadata={
            "help": "KEY: [values] with KEY method.X or training.X (e.g. method.beta, "
            "training.learning_rate); every combination of values is a run named after them"
        },
    )
    seeds: list[int] | None = field(
        default=None, metadata={"help": "the seeds of every swept run; null: each method's own seeds"}
    )
    methods: list[str] | None = field(
        default=None, metadata={"help": "the methods[] names the grid applies to; null: all of them"}
    )

    def __post_init__(self) -> None:
        for key, values in self.grid.items():
            part, _, name = key.partition(".")
            if part not in SWEEPABLE or not name or "." in name:
                raise field_error("grid", f"{key}: expected method.KEY or training.KEY")
            if not isinstance(values, list) or not values:
                raise field_error("grid", f"{key}: expected a non-empty list of values, got {values!r}")
            if len({repr(v) for v in values}) != len(values):
                raise field_error("grid", f"{key}: values repeat: {values}")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise field_error("seeds", f"must be a non-empty list of distinct integers, got {self.seeds}")


def value_label(value: Any) -> str:
    """A value as it appears in a run's name: 0.05, 5e-07, true, sigmoid."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def expand_entries(entries: list[dict[str, Any]], sweep: SweepConfig) -> list[tuple[str, dict[str, Any]]]:
    """``(origin name, entry)`` for the ``methods`` entries (plain mappings), every swept entry replaced by
    one per grid point: named after its origin, then ``-`` and each key's last part with its value,
    with the grid's values set and the sweep's seeds. (The caller validates each as a hand-written one.)"""
    names = [entry["name"] for entry in entries]
    chosen = set(sweep.methods) if sweep.methods is not None else set(names)
    unknown = sorted(chosen - set(names))
    if unknown:
        raise field_error("sweep", f"methods: {unknown[0]!r} is not one of the methods ({', '.join(names)})")
    keys = list(sweep.grid)
    expanded = []
    for entry in entries:
        if entry["name"] not in chosen:
            expanded.append((entry["name"], entry))
            continue
        for values in itertools.product(*(sweep.grid[key] for key in keys)):
            run = copy.deepcopy(entry)
            pairs = list(zip(keys, values, strict=True))
            run["name"] = entry["name"] + "".join(f"-{key.split('.')[1]}{value_label(value)}" for key, value in pairs)
            for key, value in pairs:
                part, name = key.split(".")
                run.setdefault(part, {})[name] = value
            if sweep.seeds is not None:
                run["seeds"] = list(sweep.seeds)
            expanded.append((entry["name"], run))
    return expanded
