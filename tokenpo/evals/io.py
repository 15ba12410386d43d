"""Reading benchmark and judge input files: text (optionally gzipped), with errors naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

from tokenpo.evals.errors import EvalError


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM dropped), gunzipped when its name ends in .gz."""
    if not path.is_file():
        raise EvalError(str(path), "file", "no such file")
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise EvalError(str(path), "encoding", f"not UTF-8 at byte {error.start}") from error
