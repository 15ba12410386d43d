"""The local executor's bookkeeping: one ``harness run`` at a time in an output folder, and each
stage's state as ``harness run --status`` shows it.

A local run holds an exclusive ``flock`` on ``OUT/harness-run.lock`` (its process id written inside)
for as long as it runs. The kernel drops the lock when the process ends however it ends, so a
killed run never leaves a stale lock, and ``--status`` tells a stage that is running now from one a
killed run left half done by trying the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenpo.harness.errors import HarnessError
from tokenpo.harness.pipeline.slurm import StageState
from tokenpo.harness.pipeline.stages import KEY_FILE, MARKER

LOCK = "harness-run.lock"


@contextlib.contextmanager
def running(output: Path) -> Iterator[None]:
    """Hold the output folder's run lock for the block; a second run in the same folder is refused."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / LOCK, "a+") as handle:
        if not _lock(handle):
            raise HarnessError(
                f"{output}: another `harness run` (pid {_pid(handle)}) is running in this folder; "
                "`--status` shows its stages"
            )
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # the lock itself goes with the file's closing


def running_pid(output: Path) -> int | None:
    """The process id of the ``harness run`` working in ``output`` now, or None."""
    path = output / LOCK
    if not path.is_file():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid(handle)
    return None


def status(pipeline: Any) -> list[StageState]:
    """Each stage of a local run: done (with its time), running, stopped midway, outdated, not started."""
    pid = running_pid(pipeline.output)
    states = []
    for planned in pipeline.plan():
        stage = pipeline.stage_for(planned.name)
        marker, key_file = stage.folder / MARKER, stage.folder / KEY_FILE
        if stage.done():
            seconds = stage.summary().get("seconds")
            states.append(StageState(planned.name, "done", detail=f"{seconds:.0f} s" if seconds is not None else ""))
        elif key_file.is_file() and key_file.read_text().strip() == stage.key:
            states.append(
                StageState(planned.name, "running", detail=f"pid {pid}")
                if pid is not None
                else StageState(planned.name, "stopped", detail="stopped midway; `harness run` continues it")
            )
        elif marker.is_file() or key_file.is_file():
            states.append(StageState(planned.name, "outdated", detail="its inputs changed; `harness run` redoes it"))
        else:
            states.append(StageState(planned.name, "not started"))
    return states


def _lock(handle: Any, attempts: int = 20) -> bool:
    """The exclusive lock, waiting out a ``--status`` that holds it shared for an instant."""
    for attempt in range(attempts):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.05)
    return False


def _pid(handle: Any) -> int | None:
    handle.seek(0)
    text = handle.read().strip()
    return int(text) if text.isdigit() else None
