"""Writing files so that a crash never leaves half of one, and hashing them.

Every file the harness writes for later (results, samples, checkpoints' metadata, stage markers,
reports) goes through :func:`write_atomic`: a temporary file in the same folder, flushed to disk,
then renamed over the target, so a reader sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8) to ``path`` atomically and durably; create the folder. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def replace_directory(source: str | Path, target: str | Path) -> None:
    """Move the finished folder ``source`` to ``target``, replacing what was there (a rename within one disk)."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    os.replace(source, target)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
