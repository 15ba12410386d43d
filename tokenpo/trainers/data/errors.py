"""The one error type bad preference data raises: it names the file, the line and the field."""

from __future__ import annotations

from tokenpo.core.errors import UserError


class DataError(UserError, ValueError):
    """A malformed record: ``FILE:LINE: field: what is wrong``.

    ``location`` is a line number for JSONL, JSON and CSV files (the line the record starts on) and
    ``record N`` (1-based) for Parquet files and hub datasets, which have no lines,
    and ``None`` for problems with the whole file (``FILE: field: problem``).
    """

    def __init__(self, source: str, location: int | str | None, field: str, problem: str):
        self.source, self.location, self.field, self.problem = source, location, field, problem
        where = source if location is None else f"{source}:{location}"
        super().__init__(f"{where}: {field}: {problem}")
