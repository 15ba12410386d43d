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
from typing import Any

from tokenpo.core.files import write_atomic

MARKER = "stage.json"
KEY_FILE = "stage-key"  # written first: a killed stage's partial work is recognised as ours


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
