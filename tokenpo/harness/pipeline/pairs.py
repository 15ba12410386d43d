"""The preference pairs a training reads: one source (``data.path``) or a weighted mixture
(``data.mixture``), less the held-out share (``data.eval_fraction``) or with held-out pairs of their
own (``data.eval_path``). What ``harness train`` and ``harness run``'s data stage both read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core import progress
from tokenpo.harness.pipeline.config import DataConfig, MixtureSource
from tokenpo.trainers.data import (
    LoadedPreferences,
    PreferenceExample,
    Rejected,
    held_out_split,
    load_preferences,
    write_rejects,
)
from tokenpo.trainers.data.mixture import MixedSource, mix

MIXTURE = "mixture.json"  # data/mixture.json: each source's weight, pairs available and pairs drawn
HELD_OUT = "eval_pairs.jsonl"  # data/eval_pairs.jsonl: the held-out pairs (data.eval_fraction or eval_path)


@dataclass
class ReadPairs:
    """The training's pairs before any are held out; ``mixture``: per source its ``label``, ``weight``,
    ``available`` and ``drawn`` pairs (None for one source)."""

    examples: list[PreferenceExample]
    records: int
    skipped: int
    mixture: list[dict[str, Any]] | None = None


def read_pairs(data: DataConfig, rejects: Path) -> ReadPairs:
    """Every valid pair of the data's source (the first ``data.limit``), or its mixture (module docstring of
    :mod:`tokenpo.trainers.data.mixture`; ``data.limit`` its size); skipped records go to ``rejects``."""
    if data.mixture is None:
        source = MixtureSource(data.path, name=data.name, split=data.split, format=data.format, limit=data.limit)
        sources = [source]
    else:
        sources = data.mixture
    loaded, rejected, records = [], [], 0
    for source in sources:
        read = _load(data, source)
        rejected += read.rejected
        records += read.total
        loaded.append(read.examples[: source.limit] if source.limit else read.examples)
    _report_rejects(rejected, records, rejects)
    if data.mixture is None:
        return ReadPairs(loaded[0], records, len(rejected))
    labels = [_label(source) for source in sources]
    mixed = [
        MixedSource(label, pairs, source.weight) for label, pairs, source in zip(labels, loaded, sources, strict=True)
    ]
    examples, counts = mix(mixed, data.limit, data.seed)
    record = [
        {"label": label, "weight": source.weight, "available": len(pairs), "drawn": count}
        for label, pairs, source, count in zip(labels, loaded, sources, counts, strict=True)
    ]
    return ReadPairs(examples, records, len(rejected), record)


def _load(data: DataConfig, source: MixtureSource) -> LoadedPreferences:
    """A source's records, read under the data's rules for invalid records and truncation."""
    return load_preferences(
        source.path,
        fmt=source.format,
        split=source.split,
        skip_invalid=data.skip_invalid,
        truncated_completions=data.truncated_completions,
        name=source.name,
    )


def _label(source: MixtureSource) -> str:
    subset = f":{source.name}" if source.name else ""
    return f"{source.path}{subset}[{source.split}]" if not Path(source.path).is_file() else source.path


def _report_rejects(rejected: list[Rejected], records: int, path: Path) -> None:
    if rejected:
        write_rejects(rejected, path)
        progress.note(f"data: skipped {len(rejected)} invalid records of {records}; written to {path}")
        for item in rejected[:5]:
            progress.note(f"  {item.error}")


def pair_record(example: PreferenceExample) -> dict:
    """A pair as ``pairs.jsonl`` holds it: its truncation flags travel with it, so training on the file gives
    the tokens the source gives."""
    return {
        "prompt": example.prompt,
        "chosen": example.chosen,
        "rejected": example.rejected,
        "chosen_truncated": example.chosen_truncated,
        "rejected_truncated": example.rejected_truncated,
    }


def held_out_part(data: DataConfig, pairs: list, source: str) -> tuple[list, list]:
    """``(training, held out)`` of ``pairs`` by ``data.eval_fraction`` (all for training without one)."""
    if data.eval_fraction is None:
        return pairs, []
    return held_out_split(pairs, data.eval_fraction, data.seed, source=source)


def held_out_examples(
    data: DataConfig, examples: list[PreferenceExample]
) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """``(training, held out)``: a seeded share of ``examples`` (``data.eval_fraction``), or all of them and
    the pairs of ``data.eval_path`` (read as ``data.path`` is: format, skip_invalid, truncation), or none."""
    if data.eval_path is None:
        return held_out_part(data, examples, data.path or "data")
    loaded = _load(data, MixtureSource(data.eval_path, split=data.eval_split, format=data.format))
    if loaded.rejected:
        progress.note(f"data.eval_path: skipped {len(loaded.rejected)} invalid records of {loaded.total}")
    return examples, loaded.examples
