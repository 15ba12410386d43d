"""Reading JSON and JSON-lines files with errors that name the file and line."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from tokenpo.leaderboards.errors import ResultsError


def read_json(path: Path) -> dict:
    """A JSON file holding one object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ResultsError(f"{path}: cannot read: {error.strerror or error}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path}: invalid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return data


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"{path}: cannot read: {error.strerror or error}") from error
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ResultsError(f"{path}:{number}: invalid JSON: {error.msg}") from error
            if not isinstance(row, dict):
                raise ResultsError(f"{path}:{number}: expected a JSON object")
            yield number, row


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a finite int or float (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
