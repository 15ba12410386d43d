"""Read raw records from JSONL, JSON, CSV (all optionally gzipped), Parquet or a hub dataset.

Readers never stop on a bad record: they yield it as a :class:`DataError` in place of the record,
so the caller decides between stopping and skipping (``--skip-invalid``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.trainers.data.errors import DataError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class RawRecord:
    """One record as read, or the error that stopped it from being read."""

    source: str
    location: int | str
    value: dict[str, Any] | DataError
    text: str | None = None  # the record's own text where the format has one (for rejects files)


def data_format(path: str) -> str:
    name = path[:-3] if path.endswith(".gz") else path
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix[1:]
    return "hub"


def read_records(source: str, split: str = "train", name: str | None = None) -> Iterator[RawRecord]:
    """Every record of ``source``: a file with a known suffix, or a hub dataset id (or a dataset folder) with
    its subset ``name`` (``datasets.load_dataset``'s configuration name)."""
    kind = data_format(source)
    if kind == "hub":
        yield from _read_hub(source, split, name)
        return
    if name is not None:
        raise DataError(source, None, "name", f"a subset ({name!r}) applies to hub datasets, not to files")
    path = Path(source)
    if not path.is_file():
        raise DataError(source, None, "file", "no such file")
    raw = gzip.decompress(path.read_bytes()) if source.endswith(".gz") else path.read_bytes()
    reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}[kind]
    yield from reader(source, raw)


def _bad_byte(chunk: bytes) -> str:
    """'' when ``chunk`` is valid UTF-8, else what is wrong and where (column within its line)."""
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as err:
        column = err.start - (chunk.rfind(b"\n", 0, err.start) + 1) + 1
        return f"undecodable bytes: invalid UTF-8 byte 0x{chunk[err.start]:02x} at column {column}"
    return ""


def _first_bad_line(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return raw[: err.start].count(b"\n") + 1
    return 0


def _field_with_bad_bytes(record: Any) -> str | None:
    """The first field whose text holds bytes that were not UTF-8 (decoded as surrogate escapes)."""
    if not isinstance(record, dict):
        return None
    for key, value in record.items():
        if _has_surrogate(value):
            return str(key)
    return None


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\udc80" <= ch <= "\udcff" for ch in value)
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(_has_surrogate(item) for item in value.values())
    return False


def _encoding_error(source: str, location: int, chunk: bytes, record: Any = None) -> DataError:
    field = _field_with_bad_bytes(record) if record is not None else None
    return DataError(source, location, field or "encoding", _bad_byte(chunk))


def _read_jsonl(source: str, raw: bytes) -> Iterator[RawRecord]:
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        text = line.decode("utf-8", errors="surrogateescape")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            value = None
            problem = _bad_byte(line) or f"invalid JSON: {err.msg} at column {err.colno}"
            yield RawRecord(source, number, DataError(source, number, "json", problem), text)
            continue
        if _bad_byte(line):
            yield RawRecord(source, number, _encoding_error(source, number, line, value), text)
        elif not isinstance(value, dict):
            error = DataError(source, number, "json", f"expected an object, got {type(value).__name__}")
            yield RawRecord(source, number, error, text)
        else:
            yield RawRecord(source, number, value, text)


def _read_json(source: str, raw: bytes) -> Iterator[RawRecord]:
    """A JSON array of objects, read element by element so each record knows its line."""
    if problem := _bad_byte(raw):
        line = _first_bad_line(raw)
        yield RawRecord(source, line, DataError(source, line, "encoding", problem))
        return
    text = raw.decode("utf-8")
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        yield RawRecord(source, 1, DataError(source, 1, "json", "expected a JSON array of records"))
        return
    position = _skip_space(text, position + 1)
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position) + 1
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as err:
            yield RawRecord(source, err.lineno, DataError(source, err.lineno, "json", f"invalid JSON: {err.msg}"))
            return
        element = text[position:end]
        if isinstance(value, dict):
            yield RawRecord(source, line, value, element)
        else:
            error = DataError(source, line, "json", f"expected an object, got {type(value).__name__}")
            yield RawRecord(source, line, error, element)
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _read_csv(source: str, raw: bytes) -> Iterator[RawRecord]:
    text = raw.decode("utf-8", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    start = 2  # line 1 is the header
    for row in reader:
        line = start
        start = reader.line_num + 1
        if None in row:
            yield RawRecord(source, line, DataError(source, line, "csv", "more values than header columns"))
            continue
        if _has_surrogate(row):
            field = _field_with_bad_bytes(row) or "encoding"
            bad = row[field].encode("utf-8", errors="surrogateescape") if field in row else b""
            yield RawRecord(source, line, DataError(source, line, field, _bad_byte(bad)))
            continue
        yield RawRecord(source, line, dict(row))


def _read_parquet(source: str, raw: bytes) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    for number, row in enumerate(table.to_pylist(), start=1):
        yield RawRecord(source, f"record {number}", row)


def _read_hub(source: str, split: str, name: str | None) -> Iterator[RawRecord]:
    import datasets

    if name is not None:
        subsets = _subsets(source)
        if subsets is not None and name not in subsets:
            raise DataError(source, None, "name", f"no subset {name!r}; the dataset has {', '.join(subsets)}")
    try:
        dataset = datasets.load_dataset(source, name, split=split)
    except Exception as err:  # the hub's errors vary by cause; all mean "cannot read this source"
        subset = f"subset {name!r}, " if name is not None else ""
        problem = f"cannot load hub dataset ({subset}split {split!r}): {_one_line(err)}"
        raise DataError(source, None, "dataset", problem) from err
    label = f"{source}[{name}:{split}]" if name is not None else f"{source}[{split}]"
    for number, row in enumerate(dataset, start=1):
        yield RawRecord(label, f"record {number}", dict(row))


def _subsets(source: str) -> list[str] | None:
    """The dataset's subset (configuration) names, None when they cannot be listed (offline, no access)."""
    import datasets

    try:
        return list(datasets.get_dataset_config_names(source))
    except Exception:  # unlisted is not an error here: load_dataset says what is wrong, if anything
        return None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]
