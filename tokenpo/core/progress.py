"""Progress that libraries report and only the command line draws.

Library code (training, sampling, scoring, building a leaderboard) says what it is doing and how
far it got, and nothing more::

    with progress.task("training dpo", total=steps, unit="step") as bar:
        for step in range(steps):
            ...
            bar.advance(loss=f"{loss:.4f}")
    progress.note("step 12: margins stalled")   # a message that must not tear a bar

Whether and how that is shown is the caller's choice: by default nothing is drawn (notes go to
stderr); the command line installs :class:`Bars` (tqdm, with rate and ETA) with
:func:`shown_by`, and ``harness run`` its own one-line display of the whole pipeline. So no
library takes a ``progress=`` flag or a callback, and none imports tqdm.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO


class Display(Protocol):
    """Something that shows tasks: started, advanced, ended; and notes between them."""

    def started(self, task: Task) -> None: ...
    def advanced(self, task: Task) -> None: ...
    def ended(self, task: Task) -> None: ...
    def note(self, line: str) -> None: ...


@dataclass
class Task:
    """One piece of work being counted: ``done`` of ``total`` ``unit``s, and its latest status.

    ``kind`` says what sort of work it is: tasks of one kind take comparable time (e.g. ``train``),
    so a display can estimate one from the others. ``kinds``, for a task whose units are tasks of
    different kinds (a pipeline's stages), gives each unit's kind in order, ``""`` for a unit not
    to estimate (no work left, done earlier)."""

    description: str
    total: int | None
    unit: str
    done: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    display: Display | None = field(default=None, repr=False)
    kind: str = ""
    kinds: tuple[str, ...] = ()

    def advance(self, amount: int = 1, **status: Any) -> None:
        """``amount`` more units done; ``status`` (e.g. ``loss="0.6931"``) replaces the shown values."""
        self.done += amount
        self.status.update(status)
        if self.display is not None:
            self.display.advanced(self)


class Silent:
    """Shows no task; notes go to ``file`` (a warning must reach the user even without a display).

    ``file``: where notes go; None: ``sys.stderr`` as it is when a note is written. The command line
    gives :func:`own_stderr`: notes stay on the terminal while ``harness run`` sends stderr (the
    libraries' output) to the run's log."""

    file: TextIO | None = None

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file

    def started(self, task: Task) -> None:
        pass

    def advanced(self, task: Task) -> None:
        pass

    def ended(self, task: Task) -> None:
        pass

    def note(self, line: str) -> None:
        print(line, file=self.file or sys.stderr, flush=True)


class Bars:
    """One tqdm bar per running task (rate and ETA from tqdm), nested tasks below their parent, on
    ``file`` (default: ``sys.stderr`` when the display is made)."""

    def __init__(self, file: TextIO | None = None) -> None:
        self._bars: dict[int, Any] = {}
        self.file = file or sys.stderr

    def started(self, task: Task) -> None:
        from tqdm.auto import tqdm

        self._bars[id(task)] = tqdm(
            total=task.total,
            initial=task.done,
            desc=task.description,
            unit=task.unit,
            position=len(self._bars),
            leave=not self._bars,  # an inner bar goes when done; the outermost stays as the record
            file=self.file,
            dynamic_ncols=True,
        )

    def advanced(self, task: Task) -> None:
        bar = self._bars.get(id(task))
        if bar is not None:
            if task.status:
                bar.set_postfix(task.status, refresh=False)
            bar.update(task.done - bar.n)

    def ended(self, task: Task) -> None:
        bar = self._bars.pop(id(task), None)
        if bar is not None:
            bar.close()

    def note(self, line: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(line, file=self.file)


def own_stderr() -> TextIO:
    """A stream of its own onto where stderr goes now (a duplicate of its file descriptor), for a
    display: it keeps drawing there when file descriptor 2 is sent elsewhere later (``harness run``
    sends the libraries' output, their child processes' included, to the run's log). ``sys.stderr``
    itself when it has no file descriptor (a test capturing it)."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return sys.stderr
    sys.stderr.flush()
    # the display's for the life of the process
    return open(os.dup(descriptor), "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)


_DISPLAY: ContextVar[Display | None] = ContextVar("tokenpo_progress_display", default=None)


def _current() -> Display:
    return _DISPLAY.get() or Silent()


@contextlib.contextmanager
def task(
    description: str,
    total: int | None = None,
    unit: str = "it",
    done: int = 0,
    shown: bool = True,
    kind: str = "",
    kinds: tuple[str, ...] = (),
) -> Iterator[Task]:
    """Count a piece of work on the current display; ``shown=False`` counts without showing
    (e.g. on every process but the first of a multi-GPU run); ``kind``, ``kinds``: see :class:`Task`."""
    display = _current() if shown else None
    counted = Task(description, total, unit, done, display=display, kind=kind, kinds=tuple(kinds))
    if display is not None:
        display.started(counted)
    try:
        yield counted
    finally:
        if display is not None:
            display.ended(counted)


def note(line: str) -> None:
    """A message for the user (a warning, a finding) that does not tear the bars being drawn."""
    _current().note(line)


@contextlib.contextmanager
def shown_by(display: Display) -> Iterator[Display]:
    """Show every task and note reported inside the block on ``display`` (the caller's choice)."""
    token = _DISPLAY.set(display)
    try:
        yield display
    finally:
        _DISPLAY.reset(token)
