"""``prepare_benchmarks``: convert a benchmark folder into a prepared data folder with a manifest.

The manifest (``DIR/manifest.json``) records, per benchmark, the sha256 of every source file and
every file written, the row counts, and how the data differs from the hub's: results carry it, so a
score is always traceable to the bytes it was computed on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.core.files import sha256_file, write_atomic
from tokenpo.evals.data.mirror import MIRRORS, converter_for, mirror_folder
from tokenpo.evals.errors import EvalError

MANIFEST = "manifest.json"


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


@dataclass
class PreparedData:
    """What ``prepare_benchmarks`` did: the folder, the manifest, and the benchmarks it skipped."""

    data_dir: Path
    manifest: dict[str, Any]
    skipped: list[str] = field(default_factory=list)


def prepare_benchmarks(source: Path, out: Path, only: Sequence[str] | None = None) -> PreparedData:
    """Convert every benchmark present under ``source`` (or those in ``only``) into ``out``.

    A benchmark whose folder is absent is skipped (and listed), unless it was asked for by name.
    Existing entries of the manifest for other benchmarks are kept.
    """
    source, out = Path(source).expanduser().resolve(), Path(out).expanduser().resolve()
    if not source.is_dir():
        raise EvalError(str(source), "--from", "no such folder")
    unknown = sorted(set(only or ()) - set(MIRRORS))
    if unknown:
        raise EvalError("--only", unknown[0], f"unknown benchmark; known: {', '.join(MIRRORS)}")
    manifest = load_manifest(out) or {"benchmarks": {}}
    skipped = []
    for name in only or MIRRORS:
        mirror = MIRRORS[name].data
        folder = source / mirror.folder
        if not folder.is_dir():
            if only:
                raise EvalError(str(folder), name, "benchmark folder not found")
            skipped.append(name)
            continue
        converted = converter_for(name)(folder)
        written = {}
        for (config, split), records in sorted(converted.items()):
            target = mirror_folder(out, mirror.hub_id, config) / f"{split}.jsonl"
            write_atomic(target, _jsonl(records))
            written[str(target.relative_to(out))] = {"rows": len(records), "sha256": sha256_file(target)}
        manifest["benchmarks"][name] = {
            "hub_id": mirror.hub_id,
            "source": str(folder),
            "source_sha256": {
                str(path.relative_to(source)): sha256_file(path) for path in sorted(folder.iterdir()) if path.is_file()
            },
            "files": written,
            "note": mirror.differs,
            "prepared_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return PreparedData(out, manifest, skipped)


def load_manifest(data_dir: Path) -> dict[str, Any] | None:
    """The manifest of a prepared data folder, or None when the folder has not been prepared."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EvalError(f"{path}:{error.lineno}", "json", error.msg) from error
