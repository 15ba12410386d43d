"""Per-item scores from a samples file (``samples/TASK.jsonl``, lm-eval's ``samples_TASK_TS.jsonl``):
one JSON object per scored item and filter, keyed by ``doc_id``, that the statistics resample.

A row may name the prompt it answers (``prompt_id``, an integer): a judge that samples several
answers per prompt writes it, and the bootstrap then draws prompts with all their samples. Without
it every item is a prompt of its own (an lm-eval document is one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.files import finite_number, json_lines


@dataclass(frozen=True)
class ItemScores:
    """Per-item scores of one task metric: the metric equals ``Σ num / Σ den`` over the items.

    Plain metrics score each item once (``den = 1``: acc is 0/1 per item, pass@1 a fraction).
    Metrics scored per part of an item, such as IFEval's instruction-level accuracy (one 0/1 per
    instruction of a prompt), keep the parts passed in ``num`` and the number of parts in ``den``,
    so resampling items (not parts) is the right bootstrap unit. Items are keyed ``(task, doc_id)``;
    ``prompts`` holds each item's prompt ``(task, prompt_id)`` when several items answer one prompt
    (None: every item is its own prompt), so that resampling draws whole prompts.
    """

    keys: tuple[tuple[str, int], ...]
    num: np.ndarray
    den: np.ndarray
    prompts: tuple[tuple[str, int], ...] | None = None

    @property
    def value(self) -> float:
        return float(self.num.sum() / self.den.sum())

    def index(self) -> dict[tuple[str, int], int]:
        return {key: position for position, key in enumerate(self.keys)}

    def prompt_of(self) -> dict[tuple[str, int], tuple[str, int]]:
        """Each item's prompt (the item itself when none is recorded)."""
        return dict(zip(self.keys, self.prompts or self.keys, strict=True))

    def take(self, keys: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(num, den)`` of the given items, in that order (every key must be present)."""
        position = self.index()
        order = np.fromiter((position[key] for key in keys), dtype=np.int64, count=len(keys))
        return self.num[order], self.den[order]


def _item_score(value: object) -> tuple[float, float] | None:
    """``(num, den)`` of one item's score: a number, a bool, or a list of them (parts of the item)."""
    number = finite_number(value) if not isinstance(value, bool) else float(value)
    if number is not None:
        return number, 1.0
    if isinstance(value, list):
        parts = [float(v) if isinstance(v, bool) else finite_number(v) for v in value]
        if all(part is not None for part in parts):
            return float(sum(parts)), float(len(parts))
    return None


def read_samples(path: Path, task: str, wanted: list[str], notes: list[str]) -> dict[str, ItemScores]:
    """Per-item scores of the reported metrics ``wanted`` (``"METRIC,FILTER"``) of ``task`` found in
    its samples file; a metric whose scores are not numbers is left out, with a note."""
    filters_of: dict[str, list[str]] = {}
    for key in wanted:
        metric, filter_name = key.split(",", 1)
        filters_of.setdefault(metric, []).append(filter_name)
    collected: dict[str, dict[int, tuple[float, float]]] = {key: {} for key in wanted}
    prompt_ids: dict[int, int] = {}
    unusable: set[str] = set()
    for line_number, row in json_lines(path):
        doc_id = row.get("doc_id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, int):
            raise ResultsError(f"{path}:{line_number}: doc_id: missing or not an integer")
        if "prompt_id" in row:
            prompt_id = row["prompt_id"]
            if isinstance(prompt_id, bool) or not isinstance(prompt_id, int):
                raise ResultsError(f"{path}:{line_number}: prompt_id: expected an integer, got {prompt_id!r}")
            if prompt_ids.setdefault(doc_id, prompt_id) != prompt_id:
                raise ResultsError(f"{path}:{line_number}: prompt_id: doc_id {doc_id} answers two prompts")
        row_filter = row.get("filter")
        for key in wanted:
            metric, filter_name = key.split(",", 1)
            if key in row:
                raw = row[key]
            elif metric in row and (row_filter == filter_name or (row_filter is None and len(filters_of[metric]) == 1)):
                raw = row[metric]
            else:
                continue
            score = _item_score(raw)
            if score is None:
                unusable.add(key)
                continue
            if doc_id in collected[key]:
                raise ResultsError(f"{path}:{line_number}: doc_id {doc_id} repeated for metric {key!r}")
            collected[key][doc_id] = score
    scores = {}
    for key, by_doc in collected.items():
        if key in unusable:
            notes.append(f"{path}: {key}: per-item scores are not numbers; using the reported stderr")
        elif by_doc:
            doc_ids = sorted(by_doc)
            values = np.array([by_doc[doc] for doc in doc_ids], dtype=float)
            keys = tuple((task, doc) for doc in doc_ids)
            prompts = tuple((task, prompt_ids[doc]) for doc in doc_ids) if prompt_ids else None
            if prompts is not None and len(prompt_ids) < len(doc_ids):
                missing = next(doc for doc in doc_ids if doc not in prompt_ids)
                raise ResultsError(f"{path}: prompt_id: missing for doc_id {missing} (other rows have one)")
            scores[key] = ItemScores(keys=keys, num=values[:, 0], den=values[:, 1], prompts=prompts)
    return scores
