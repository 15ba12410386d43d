"""The leaderboard's columns (the benchmarks of the catalog that have a headline score) and its normalisation.

Benchmarks are declared once, in :mod:`tokenpo.core.catalog` (``tokenpo/core/catalog.yaml``); a copy with
entries of your own goes to ``harness leaderboard --catalog FILE``.
"""

from __future__ import annotations

from pathlib import Path

from tokenpo.core.catalog import Benchmark, CatalogError, columns, load_catalog
from tokenpo.leaderboards.errors import ResultsError

__all__ = ["Benchmark", "load_columns", "normalised_score"]


def normalised_score(value: float, random: float) -> float:
    """Open LLM Leaderboard v2 normalisation: ``max(0, (v − random) / (1 − random)) · 100``.

    ``random`` is the score of random guessing (0.25 for 4-way multiple choice, 0 for generative
    tasks), so 0 means "no better than chance" and 100 a perfect score. Works on arrays too.
    """
    import numpy as np

    scaled = (np.asarray(value, dtype=float) - random) / (1.0 - random) * 100.0
    clipped = np.maximum(scaled, 0.0)
    return float(clipped) if clipped.ndim == 0 else clipped


def load_columns(path: str | Path | None = None) -> tuple[Benchmark, ...]:
    """The columns of a benchmarks file (default: the packaged catalog), in file order."""
    try:
        return columns(load_catalog(path))
    except CatalogError as error:
        raise ResultsError(str(error)) from error
