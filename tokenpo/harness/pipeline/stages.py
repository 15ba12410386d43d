"""Idempotent, resumable stages: a stage's folder is done when its marker matches its inputs.

Each stage writes into its own folder and, last of all, ``stage.json`` holding the fingerprint of
everything that determined its output (resolved config, input fingerprints). Re-running skips a
stage whose marker matches; a stage killed midway has no marker and runs again (the trainer and
the evaluator resume from what they had written). A folder whose marker belongs to DIFFERENT
inputs is moved aside to ``NAME.superseded-N``, never deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenpo.core.files import write_atomic

MARKER = "stage.json"
KEY_FILE = "stage-key"  # written first: a killed stage's partial work is recognised as ours

StageKind = Literal["data", "benchmark-data", "train", "eval", "answers", "winrate", "report"]
_KINDS: tuple[StageKind, ...] = ("data", "benchmark-data", "train", "eval", "answers", "winrate", "report")
# The kinds named after the model they train, evaluate, make answer or judge.
_OF_A_MODEL: tuple[StageKind, ...] = ("train", "eval", "answers", "winrate")


@dataclass(frozen=True)
class PlannedStage:
    """A stage of the run: its kind, the model a ``train``, ``eval``, ``answers`` or ``winrate`` stage is for
    (``NAME-seedS``, or ``base`` but for train), and the stages whose output it reads: what an executor
    schedules. Its name (``data``, ``benchmark-data``, ``train/NAME-seedS``, ``eval/LABEL``,
    ``answers/LABEL``, ``winrate/LABEL``, ``report``) is how a stage is
    asked for on the command line (``harness run --stage``) and recorded (``slurm/jobs.json``); it is
    read back only by :meth:`parse`."""

    kind: StageKind
    model: str = ""
    after: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.model}" if self.model else self.kind

    @classmethod
    def parse(cls, name: str) -> PlannedStage:
        """The stage a name stands for (without its dependencies); ValueError for a name no stage has."""
        kind, _, model = name.partition("/")
        if kind not in _KINDS or bool(model) != (kind in _OF_A_MODEL):
            raise ValueError(f"no stage named {name!r}")
        return cls(kind, model)  # type: ignore[arg-type]  # checked against _KINDS above


@dataclass(frozen=True)
class Stage:
    """One unit of pipeline work with its folder and the fingerprint of its inputs."""

    name: str
    folder: Path
    key: str

    def done(self) -> bool:
        marker = self.folder / MARKER
        return marker.is_file() and json.loads(marker.read_text()).get("key") == self.key

    def prepare(self) -> None:
        """Make the folder ready to (re)run: keep partial work of the same inputs, move other work aside."""
        key_file = self.folder / KEY_FILE
        if key_file.is_file() and key_file.read_text().strip() != self.key:
            self._move_aside()
        self.folder.mkdir(parents=True, exist_ok=True)
        # Written first, so that a killed stage's partial work is recognised as ours next time.
        key_file.write_text(self.key + "\n")

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        payload = {"stage": self.name, "key": self.key, "summary": summary or {}}
        write_atomic(self.folder / MARKER, json.dumps(payload, indent=2) + "\n")

    def summary(self) -> dict[str, Any]:
        return json.loads((self.folder / MARKER).read_text())["summary"]

    def _move_aside(self) -> None:
        number = 1
        while (aside := self.folder.with_name(f"{self.folder.name}.superseded-{number}")).exists():
            number += 1
        self.folder.rename(aside)
