"""Where pulled models live, and how a folder appears there atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "HARNESS_CACHE"
PARTIAL_PREFIX = ".partial-"


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``override``, else ``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/tokenpo-harness``."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tokenpo-harness"


def models_dir(root: Path) -> Path:
    return root / "models"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(parent: Path) -> list[Path]:
    """Delete half-written folders left by processes that were killed; returns what was removed."""
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        if not entry.name.startswith(PARTIAL_PREFIX):
            continue
        pid_text = entry.name.rsplit("-", 1)[-1]
        if pid_text.isdigit() and _pid_alive(int(pid_text)) and int(pid_text) != os.getpid():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a scratch folder that becomes ``final`` in one rename once the block succeeds.

    A process killed inside the block leaves only ``.partial-<name>-<pid>`` beside ``final``
    (removed by :func:`remove_stale_partials`), never a half-filled ``final``.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.parent / f"{PARTIAL_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        yield scratch
        _fsync_tree(scratch)
        try:
            os.rename(scratch, final)
        except OSError:
            if not final.is_dir():  # another process did not win the race: a real failure
                raise
            # Another process finished the same pull first; its folder is as good as ours.
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
