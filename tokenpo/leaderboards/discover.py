"""Where the results are: the result folders at or below a path, and what a path that holds none is.

A result folder holds ``results.json`` (ours) or lm-eval's ``results_TS.json``. A ``harness run``
output holds many, one per evaluated model and kind (``eval/LABEL/sentiment``, ``eval/LABEL/benchmarks``,
checkpoints below ``eval/LABEL/steps/``), so a leaderboard can be asked for the run folder itself.
"""

from __future__ import annotations

import re
from pathlib import Path


def result_files(folder: Path) -> list[Path]:
    """The results file of every result folder at or below ``folder``: ``results.json`` (ours), else the
    newest ``results_*.json`` (lm-eval's). A result folder's own subfolders are not searched, nor
    folders a re-run moved aside (``NAME.superseded-N``), so a run folder (``runs/NAME``) or its
    ``eval/`` gives the same results as the pipeline's leaderboard."""
    if (folder / "results.json").is_file():
        return [folder / "results.json"]
    if (newest := latest_lmeval_file(folder)) is not None:
        return [newest]
    children = sorted(
        (child for child in folder.iterdir() if child.is_dir() and not superseded(child)), key=_natural_order
    )
    return [file for child in children for file in result_files(child)]


def superseded(path: Path) -> bool:
    """A folder a re-run moved aside (``NAME.superseded-N``): an older version of a result or run, not one more."""
    return _SUPERSEDED.search(path.name) is not None


def _natural_order(path: Path) -> list:
    """``step-8`` before ``step-16``: numbers in a name compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def not_a_result(path: Path) -> str | None:
    """What a path that holds no result is, when it is something of the harness's own (else None)."""
    if path.is_file():
        return _NOT_RESULT_FILES.get(path.name)
    if (path / "metrics.jsonl").is_file() or (path / "DONE").is_file():
        return "a training run folder (its models' evaluations are in the run's eval/ folder)"
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        return "a model folder (evaluate it with `harness eval --model FOLDER`)"
    if (path / "pairs.jsonl").is_file():
        return "the run's preference data"
    return None


_SUPERSEDED = re.compile(r"\.superseded-\d+$")
_NOT_RESULT_FILES = {
    "stage-key": "a pipeline stage's fingerprint (give the run folder or its eval/ instead)",
    "stage.json": "a pipeline stage's marker (give the run folder or its eval/ instead)",
}


def latest_lmeval_file(folder: Path) -> Path | None:
    files = sorted(p for p in folder.glob("results_*.json") if p.is_file())
    return files[-1] if files else None  # lm-eval's timestamps sort chronologically
