"""Small file helpers every part of evals uses: read text (optionally gzipped), write atomically, hash."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
