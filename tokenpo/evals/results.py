"""Result folders (docs/file-formats.md): ``results.json`` in lm-eval's schema plus a ``harness`` block,
and ``samples/TASK.jsonl`` with one row per scored item (per filter), each written atomically; and
the same files under lm-eval's own names (:func:`link_lm_eval_layout`).

``results.json`` is written last, so its presence means the folder is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core.files import write_atomic

RESULTS = "results.json"
SAMPLES = "samples"
# GPQA's authors ask that its questions never appear in plain text: its rows keep ids, hashes and scores.
# Any task of the family (gpqa_diamond_*, leaderboard_gpqa_*, …) is redacted, wherever "gpqa" is in its name.
REDACTED_FAMILIES = ("gpqa",)
REDACTED_FIELDS = ("doc", "arguments", "resps", "filtered_resps")


def harness_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokenpo-harness")
    except PackageNotFoundError:
        return "unknown"


def _json_default(value: Any) -> Any:
    from lm_eval.utils import handle_non_serializable

    return handle_non_serializable(value)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=False) + "\n"


def sample_row(task: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """lm-eval's logged sample, GPQA text removed."""
    if any(family in task.lower() for family in REDACTED_FAMILIES):
        return {k: v for k, v in row.items() if k not in REDACTED_FIELDS}
    return dict(row)


def write_samples(out_dir: Path, task: str, rows: Iterable[Mapping[str, Any]]) -> Path:
    path = Path(out_dir) / SAMPLES / f"{task}.jsonl"
    text = "".join(json.dumps(sample_row(task, row), default=_json_default, ensure_ascii=False) + "\n" for row in rows)
    write_atomic(path, text)
    return path


def write_results(out_dir: Path, results: Mapping[str, Any], harness: Mapping[str, Any]) -> Path:
    """Write ``results.json`` (everything lm-eval returned but the samples, plus ``harness``)."""
    body = {k: v for k, v in results.items() if k != "samples"}
    body["harness"] = dict(harness)
    path = Path(out_dir) / RESULTS
    write_atomic(path, dumps(body))
    return path


@dataclass(frozen=True)
class LmEvalLayout:
    """The files of a result folder under lm-eval's own names: ``MODEL/results_DATE.json`` and, per task,
    ``MODEL/samples_TASK_DATE.jsonl`` (``date_id``: lm-eval's ``EvaluationTracker.date_id``)."""

    folder: Path
    date_id: str
    results: Path
    samples: dict[str, Path]


def link_lm_eval_layout(
    out_dir: Path, model_folder: str, results_path: Path, sample_files: Iterable[Path]
) -> LmEvalLayout:
    """Give the result folder lm-eval's own layout too: ``MODEL/results_DATE.json`` and
    ``MODEL/samples_TASK_DATE.jsonl`` (as ``lm_eval --output_path OUT`` names them), so lm-eval's
    tooling finds them. They are hard links to ``results.json`` and ``samples/TASK.jsonl`` (copies
    where the file system has no links): the same bytes, GPQA redaction included."""
    import shutil
    from datetime import datetime

    folder = Path(out_dir) / model_folder
    folder.mkdir(parents=True, exist_ok=True)
    date_id = datetime.now().isoformat().replace(":", "-")
    samples = {path.stem: (path, folder / f"samples_{path.stem}_{date_id}.jsonl") for path in sample_files}
    pairs = [(results_path, folder / f"results_{date_id}.json"), *samples.values()]
    for source, target in pairs:
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return LmEvalLayout(folder, date_id, pairs[0][1], {task: target for task, (_, target) in samples.items()})


def judge_results(
    task: str,
    metrics: Mapping[str, tuple[float, float]],
    n: int,
    config: Mapping[str, Any],
    higher_is_better: Mapping[str, bool],
) -> dict[str, Any]:
    """A judge's scores in lm-eval's shape: ``{"results": {task: {"METRIC,none": v, "METRIC_stderr,none": se}}, …}``."""
    row: dict[str, Any] = {"alias": task}
    for name, (value, stderr) in metrics.items():
        row[f"{name},none"] = value
        row[f"{name}_stderr,none"] = stderr
    return {
        "results": {task: row},
        "group_subtasks": {task: []},
        "configs": {task: {"task": task, **config}},
        "versions": {task: 1.0},
        "n-shot": {task: 0},
        "higher_is_better": {task: dict(higher_is_better)},
        "n-samples": {task: {"original": n, "effective": n}},
    }
