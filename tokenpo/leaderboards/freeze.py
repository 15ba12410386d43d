"""Freeze a result folder as a regression baseline: scores only, safe to commit.

A baseline kept in a repository must not carry benchmark text (questions, answers, prompts,
model outputs): licences and GPQA's request forbid republishing items. The frozen copy keeps
``results.json`` without the task configs (which can hold few-shot text) and, per item, only
``doc_id``, ``filter`` and the metric values that the paired tests read.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenpo.core.files import write_atomic
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.files import json_lines, read_json

KEPT_RESULT_KEYS = ("results", "groups", "group_subtasks", "versions", "n-shot", "higher_is_better", "n-samples")
KEPT_HARNESS_KEYS = ("model_spec", "base_model", "method", "seed", "run", "suite", "data_source", "harness_version")


def freeze_result(source: str | Path, destination: str | Path) -> Path:
    """Write the scores-only copy of the result folder ``source`` into ``destination``."""
    source = Path(source)
    folder = source.parent if source.name == "results.json" else source
    data = read_json(folder / "results.json")
    frozen = {key: data[key] for key in KEPT_RESULT_KEYS if key in data}
    frozen["harness"] = {k: v for k, v in (data.get("harness") or {}).items() if k in KEPT_HARNESS_KEYS}
    frozen["harness"]["frozen_from"] = str(folder)
    out = Path(destination)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    metrics_of = {task: set(names) for task, names in (data.get("higher_is_better") or {}).items()}
    for samples in sorted((folder / "samples").glob("*.jsonl")):
        task = samples.stem
        if task not in metrics_of:
            raise ResultsError(f"{samples}: task {task!r} has no higher_is_better entry in {folder / 'results.json'}")
        rows = []
        for _, row in json_lines(samples):
            kept = {k: row[k] for k in ("doc_id", "filter") if k in row}
            kept.update({k: row[k] for k in metrics_of[task] if k in row})
            rows.append(json.dumps(kept) + "\n")
        write_atomic(out / "samples" / samples.name, "".join(rows))
    write_atomic(out / "results.json", json.dumps(frozen, indent=2) + "\n")
    return out
