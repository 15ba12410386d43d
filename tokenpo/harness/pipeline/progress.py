"""One progress line for a whole ``harness run``: stage i of n, what runs, its count, the time, the ETA.

The pipeline reports itself through :mod:`tokenpo.core.progress` like any library: the run is the
outermost task (one unit per stage, with the kind of each stage), each stage a task inside it, and
the work inside a stage (training steps, sampled continuations, lm-eval requests) the tasks below.
:class:`RunProgress` draws all of them as one line, redrawn every second so the time moves while a
stage counts nothing::

    run quickstart [7/10] evaluate dpo-seed0 · 80/96 text |█████████▋      | 08:12 · eta 05:40

The ETA adds up what the stages still to run should take, each estimated from the stages of its
kind that ran in this process (the mean seconds of the trainings so far, of the evaluations so far);
the stage running counts its kind's mean less the time it has run. A stage skipped because an
earlier run finished it is no measurement (it took no time here) and no work left: the run's plan
gives it no kind, as it does the report (the only one of its kind, last, seconds long). While a
stage to come is of a kind none of which has finished (the evaluations, during the trainings),
there is no basis and no ETA is shown, only the elapsed time.

Why not tqdm's ETA over the bar's position: tqdm extrapolates from the rate at which the position
moved, and recomputes only when it moves. Stages are not alike (half a minute of sampling, an
instant for a skipped stage, minutes of lm-eval loading its tasks with no count at all), so the
rate swings at every stage boundary (one slow step after fast ones gave hours) and then stays
frozen while nothing is counted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from tokenpo.core.progress import Task, own_stderr

SKIPPED = "done earlier, skipped"
BAR_WIDTH = 16
MIN_REDRAW = 0.1  # seconds between two redraws caused by counting (an lm-eval run counts every request)


@dataclass
class StageTimes:
    """The seconds each stage that ran here took, by kind, and the time left they give a basis for."""

    took: dict[str, list[float]] = field(default_factory=dict)

    def record(self, kind: str, seconds: float) -> None:
        self.took.setdefault(kind, []).append(seconds)

    def expected(self, kind: str) -> float | None:
        """Seconds a stage of ``kind`` should take: the mean of its kind so far; 0 for no kind (no work
        left); None without a basis."""
        if not kind:
            return 0.0
        took = self.took.get(kind)
        return sum(took) / len(took) if took else None

    def left(self, running: tuple[str, float] | None, pending: Sequence[str]) -> float | None:
        """Seconds left for the ``running`` stage (its kind, seconds it has run) and the ``pending`` kinds;
        None when one of them has no basis."""
        total, times = 0.0, self
        if running is not None:
            kind, elapsed = running
            expected = self.expected(kind)
            if expected is None:
                return None
            total = max(expected - elapsed, 0.0)
            if elapsed > expected and kind:
                # Past its kind's mean: it may end any moment, and it takes at least this long, which
                # the stages of its kind to come are estimated with (the ETA grows rather than stalls).
                times = StageTimes({**self.took, kind: [*self.took[kind], elapsed]})
        for kind in pending:
            expected = times.expected(kind)
            if expected is None:
                return None
            total += expected
        return total


class RunProgress:
    """A :class:`tokenpo.core.progress.Display` for ``harness run`` (see the module docstring).

    file: where to draw (default: a stream of its own onto stderr, the terminal, which it keeps while
    the run sends stderr to its log: :func:`tokenpo.core.progress.own_stderr`); clock: seconds, monotonic;
    tick: seconds between redraws while nothing is reported (default 1 on a terminal, 10 otherwise:
    a log file need not get a line a second)."""

    def __init__(
        self, file: TextIO | None = None, clock: Callable[[], float] = time.monotonic, tick: float | None = None
    ) -> None:
        self.file = file or own_stderr()
        self.clock = clock
        self.tick = tick if tick is not None else (1.0 if _is_terminal(self.file) else 10.0)
        self.stack: list[Task] = []
        self.times = StageTimes()
        self.started_at: dict[int, float] = {}
        self.stages_started = 0
        self._lock = threading.RLock()
        self._shown = 0  # length of the line on screen
        self._last_draw = float("-inf")
        self._behind = False  # a count advanced without being drawn
        self._stop: threading.Event | None = None

    # ---------------------------------------------------------------- what the pipeline reports

    def started(self, task: Task) -> None:
        with self._lock:
            self.stack.append(task)
            self.started_at[id(task)] = self.clock()
            if len(self.stack) == 1:
                self._start_ticking()
            elif len(self.stack) == 2:
                self.stages_started += 1
            self._draw()

    def advanced(self, task: Task) -> None:
        with self._lock:
            counting = task.total is not None and 0 < task.done < task.total and self._level(task) > 0
            if not counting or self.clock() - self._last_draw >= MIN_REDRAW:  # a count's first and last always
                self._draw()
            else:
                self._behind = True  # drawn by the next event or tick, or before the task ends

    def ended(self, task: Task) -> None:
        with self._lock:
            level = self._level(task)
            if level < 0:
                return
            if self._behind and level > 0:
                self._draw()
            if level == 0:  # the run: its last line stays (finished, or where it stopped)
                self._stop_ticking()
                self._draw_line(self._line(task, finished=task.total is not None and task.done >= task.total))
                self.file.write("\n")
                self.file.flush()
                self._shown = 0
            del self.stack[level]
            began = self.started_at.pop(id(task))
            if level == 1 and task.status.get("state") != SKIPPED:
                self.times.record(task.kind, self.clock() - began)
            if len(self.stack) > 1:  # inner work ended; a stage's end shows once the run has advanced
                self._draw()

    def note(self, line: str) -> None:
        with self._lock:
            self.file.write("\r" + " " * self._shown + "\r" + line + "\n")
            self._shown = 0
            self._draw()

    def _level(self, task: Task) -> int:
        """0 for the run, 1 for a stage, 2 and more for the work inside; -1 when not shown here."""
        return next((level for level, shown in enumerate(self.stack) if shown is task), -1)

    # ---------------------------------------------------------------- the estimate

    def seconds_left(self) -> float | None:
        """The ETA in seconds (module docstring), or None without a basis."""
        if not self.stack or not self.stack[0].kinds:
            return None
        run = self.stack[0]
        running = None
        if len(self.stack) > 1 and self.stack[1].status.get("state") != SKIPPED:
            planned = run.kinds[self.stages_started - 1] if self.stages_started <= len(run.kinds) else ""
            running = (planned, self.clock() - self.started_at[id(self.stack[1])])  # the plan says what counts
        return self.times.left(running, run.kinds[self.stages_started :])

    # ---------------------------------------------------------------- drawing

    def _line(self, run: Task, finished: bool = False) -> str:
        elapsed = self.clock() - self.started_at[id(run)]
        if finished:
            return f"{run.description} [{run.done}/{run.total}] finished |{_bar(1.0)}| {_clock(elapsed)}"
        in_stage = len(self.stack) > 1
        text = f"{run.description} [{run.done + in_stage}/{run.total}]"
        if in_stage:
            stage = self.stack[1]
            text += f" {stage.description}"
            detail = stage.status.get("state", "")
            inner = self.stack[-1] if len(self.stack) > 2 else None
            if inner is not None and inner.total:
                detail = f"{inner.done}/{inner.total} {inner.unit}"
            if detail:
                text += f" · {detail}"
        # The bar counts finished stages only: a stage's parts (reference log-probs, then steps) each
        # count from zero, and a bar that went back at each would say nothing.
        times = f"|{_bar(run.done / run.total if run.total else 0.0)}| {_clock(elapsed)}"
        left = self.seconds_left()
        if left is not None:
            times += f" · eta {_clock(left)}"
        width = _columns(self.file)
        if width is not None and len(text) + 1 + len(times) >= width:
            text = text[: max(width - len(times) - 3, 0)] + "…"
        return f"{text} {times}"

    def _draw(self) -> None:
        if self.stack:
            self._draw_line(self._line(self.stack[0]))

    def _draw_line(self, line: str) -> None:
        self.file.write("\r" + line + " " * max(self._shown - len(line), 0))
        self.file.flush()
        self._shown = len(line)
        self._last_draw = self.clock()
        self._behind = False

    def _start_ticking(self) -> None:
        self._stop = stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.tick):
                with self._lock:
                    if not stop.is_set():
                        self._draw()

        threading.Thread(target=tick, name="harness-run-progress", daemon=True).start()

    def _stop_ticking(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None


def _bar(fraction: float, width: int = BAR_WIDTH) -> str:
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _is_terminal(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


def _columns(file: TextIO) -> int | None:
    """The terminal's width when drawing on one (a line longer than it would wrap and never be erased)."""
    if not _is_terminal(file):
        return None
    try:
        return os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None
