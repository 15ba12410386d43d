"""Which hub datasets we mirror offline (the catalog's benchmarks with ``data``) and where the files go.

A prepared data folder holds ``DIR/<hub id>/<config>/<split>.jsonl`` (``default`` when the hub
dataset has no config name), so any official lm-eval task that reads one of these datasets can be
pointed at the local files by its hub id, config and split names alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenpo.core.catalog import Benchmark, load_catalog, mirrored
from tokenpo.evals.data import converters

DATA_ENV = "HARNESS_DATA"
DEFAULT_CONFIG = "default"

MIRRORS: dict[str, Benchmark] = mirrored(load_catalog())


def converter_for(name: str) -> converters.Converter:
    """The function that turns benchmark ``name``'s source folder into hub-schema records."""
    return converters.CONVERTERS[name]


def default_data_dir(cache_root: Path) -> Path:
    """``$HARNESS_DATA``, else ``CACHE_ROOT/benchmarks``: prepared data never goes into the repository."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return cache_root / "benchmarks"


def mirror_folder(data_dir: Path, hub_id: str, config: str | None) -> Path:
    """Where the files of ``hub_id``'s ``config`` live in a prepared data folder."""
    return data_dir / hub_id / (config or DEFAULT_CONFIG)
