"""One progress display for a whole ``harness run``: stage i of n, what runs, its step, the ETA."""

from __future__ import annotations

import sys

from tqdm import tqdm


class RunProgress:
    """A bar over the run's stages whose text names the current stage and its inner progress.

    ``stage()`` starts the next stage; ``inner(done, total)`` reports its steps (training steps,
    generated samples); ``skip()`` marks a stage whose output already exists. The ETA is tqdm's
    over the run's stages, refined within a stage by the inner fraction.
    """

    def __init__(self, name: str, total_stages: int, enabled: bool = True):
        self.name, self.total, self.index, self.label = name, total_stages, 0, ""
        self.bar = tqdm(
            total=total_stages * 100,
            bar_format="{desc} |{bar:16}| {elapsed}<{remaining}",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self._show("starting")

    def stage(self, label: str) -> None:
        self._advance_to(self.index * 100)
        self.index += 1
        self.label = label
        self._show("")

    def inner(self, done: int, total: int, detail: str = "") -> None:
        fraction = min(1.0, done / total) if total else 1.0
        self._advance_to((self.index - 1) * 100 + int(99 * fraction))
        self._show(f"{done}/{total} {detail}".rstrip())

    def skip(self, label: str) -> None:
        self.stage(label)
        self._show("done earlier, skipped")

    def write(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)

    def close(self, finished: bool) -> None:
        if finished:
            self._advance_to(self.total * 100)
            self.bar.set_description_str(f"run {self.name} [{self.total}/{self.total}] finished", refresh=True)
        self.bar.close()

    def _advance_to(self, position: int) -> None:
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)

    def _show(self, detail: str) -> None:
        text = f"run {self.name} [{self.index}/{self.total}] {self.label}".rstrip()
        self.bar.set_description_str(f"{text} · {detail}" if detail else text, refresh=True)
