"""One progress display for a whole ``harness run``: stage i of n, what runs, its step, the ETA.

The pipeline reports itself through :mod:`tokenpo.core.progress` like any library: the run is the
outermost task (one unit per stage), each stage a task inside it, and the work inside a stage
(training steps, sampled continuations) the tasks below. :class:`RunProgress` draws all of them as
one line, ``run NAME [i/n] STAGE · done/total unit``, and the ETA over the run's stages, refined
within a stage by the inner fraction.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from tokenpo.core.progress import Task

SKIPPED = "done earlier, skipped"


class RunProgress:
    """A :class:`tokenpo.core.progress.Display` for ``harness run`` (see the module docstring)."""

    def __init__(self) -> None:
        self.stack: list[Task] = []
        self.bar: tqdm | None = None

    def started(self, task: Task) -> None:
        self.stack.append(task)
        if len(self.stack) == 1:
            self.bar = tqdm(
                total=(task.total or 1) * 100,
                bar_format="{desc} |{bar:16}| {elapsed}<{remaining}",
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self._show()

    def advanced(self, task: Task) -> None:
        self._show()

    def ended(self, task: Task) -> None:
        if task in self.stack:
            self.stack.remove(task)
        if not self.stack and self.bar is not None:
            if task.done >= (task.total or 0):
                self._move_to(self.bar.total)
                self.bar.set_description_str(f"{task.description} [{task.done}/{task.total}] finished", refresh=True)
            self.bar.close()
            self.bar = None
        elif len(self.stack) > 1:  # inner work ended; a stage's end shows once the run has advanced
            self._show()

    def note(self, line: str) -> None:
        tqdm.write(line, file=sys.stderr)

    def _show(self) -> None:
        if self.bar is None or not self.stack:
            return
        run = self.stack[0]
        position = run.done * 100
        text = f"{run.description} [{run.done + (len(self.stack) > 1)}/{run.total}]"
        if len(self.stack) > 1:
            stage = self.stack[1]
            text += f" {stage.description}"
            detail = stage.status.get("state", "")
            inner = self.stack[-1] if len(self.stack) > 2 else None
            if inner is not None and inner.total:
                fraction = min(1.0, inner.done / inner.total)
                position += int(99 * fraction)
                detail = f"{inner.done}/{inner.total} {inner.unit}"
            if detail:
                text += f" · {detail}"
        self._move_to(position)
        self.bar.set_description_str(text, refresh=True)

    def _move_to(self, position: int) -> None:
        if self.bar is not None and position > self.bar.n:
            self.bar.update(position - self.bar.n)
