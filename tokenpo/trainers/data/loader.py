"""Load a preference source into validated examples: stop at the first bad record, or skip and keep."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from tokenpo.core.files import write_atomic
from tokenpo.trainers.data.errors import DataError
from tokenpo.trainers.data.readers import RawRecord, read_records
from tokenpo.trainers.data.records import PreferenceExample, mark_truncated, parse_record


@dataclass(frozen=True)
class Rejected:
    """A record that was skipped, with why, kept so that nothing disappears silently."""

    error: DataError
    raw: RawRecord

    def to_json(self) -> dict:
        record = self.raw.value if isinstance(self.raw.value, dict) else None
        return {
            "source": self.error.source,
            "location": self.error.location,
            "field": self.error.field,
            "error": self.error.problem,
            "record": record,
            "text": None if record is not None else self.raw.text,
        }


@dataclass
class LoadedPreferences:
    examples: list[PreferenceExample]
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.examples) + len(self.rejected)


def load_preferences(
    source: str,
    fmt: str = "auto",
    split: str = "train",
    skip_invalid: bool = False,
    truncated_completions: bool = False,
    name: str | None = None,
) -> LoadedPreferences:
    """Every example of ``source``. A bad record raises :class:`DataError` unless ``skip_invalid``,
    in which case it is returned in ``rejected`` for the caller to report and write out.
    ``truncated_completions``: every plain-text completion was cut at a length limit (see
    :func:`mark_truncated`), whatever its record says. ``name``: a hub dataset's subset (configuration)."""
    loaded = LoadedPreferences(examples=[])
    for raw in read_records(source, split=split, name=name):
        try:
            example = parse_record(raw, fmt)
            loaded.examples.append(mark_truncated(example) if truncated_completions else example)
        except DataError as error:
            if not skip_invalid:
                raise
            loaded.rejected.append(Rejected(error, raw))
    if not loaded.examples:
        problem = "no records" if not loaded.rejected else f"all {len(loaded.rejected)} records are invalid"
        raise DataError(source, None, "file", problem)
    return loaded


def write_rejects(rejected: list[Rejected], path: str | os.PathLike[str]) -> None:
    """Write skipped records as JSONL, atomically (a reader never sees half a file)."""
    # ASCII escapes keep undecodable bytes (surrogate escapes) writable and visible.
    write_atomic(path, "".join(json.dumps(item.to_json()) + "\n" for item in rejected))
