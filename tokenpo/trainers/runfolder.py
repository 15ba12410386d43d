"""The run folder: its layout, what a finished or interrupted run left there, and the resume policy.

Layout (docs/file-formats.md)::

    RUN/config.yaml            the resolved configuration (+ base_weights: where the base model's weights came
                               from, when its folder's manifest says; tokenpo.core.weights)
    RUN/metrics.jsonl          one row per optimiser step
    RUN/checkpoints/step-N/    model (HF format) + mask head + state/ (optimiser, scheduler, RNG; not with
                               training.save_only_model) + trainer_state.json (step, fingerprint)
                               + anchors.json (TI-DPO) + README.md, its model card (*)
    RUN/final/                 the final model (LoRA: merged into the base weights) and its model card
                               (README.md, token-picture.svg, card-sources.json) (*)
    RUN/final/adapter/         LoRA runs: the adapter itself (peft's format; tokenpo.core.run_layout.ADAPTER)
    RUN/token_scores.jsonl     token-level scores of a few training pairs
    RUN/health.json            training health: every check with its outcome, the flags, the effective β
                               and TI-DPO's anchor coverage (tokenpo.trainers.health)
    RUN/DONE                   written last: the run is complete

(*) The model cards are not the trainer's: the harness writes them (tokenpo.cards) when ``train()`` returns
or fails, for every checkpoint without one and for the finished model (``harness train``, ``harness run``).

Every folder and file is written under a temporary name (``.partial-*``) and renamed into place, so
a killed run leaves either the previous state or the new one. A run is identified by a fingerprint
of its configuration, model path and tokenised data: a folder holding a finished run with the same
fingerprint is returned as it is, one holding a different run is refused, and an unfinished run of
the same fingerprint resumes from its latest checkpoint that holds the training state
(``training.resume``; a run of model-only checkpoints starts again from step 0).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tokenpo.core.files import replace_directory, write_atomic
from tokenpo.core.fingerprint import fingerprint
from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import TokenizedPair
from tokenpo.trainers.errors import TrainingError
from tokenpo.trainers.health import HealthCheck, HealthFlag, HealthReport

# Settings that change how a run is kept or shown, not what it computes.
_NOT_FINGERPRINTED = {
    "save_every",
    "keep_checkpoints",
    "save_only_model",
    "resume",
    "report_to",
    "token_scores_examples",
    "eval_steps",  # when the held-out pairs are evaluated; the held-out pairs themselves are fingerprinted
}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    final_dir: Path
    metrics_path: Path
    steps: int
    resumed_from: int | None = None  # the checkpoint step a resumed run continued from
    already_done: bool = False  # the folder already held this finished run
    # training health: every check, the flags, the effective β, the anchors
    report: HealthReport = field(default_factory=HealthReport)

    @property
    def health(self) -> tuple[HealthFlag, ...]:
        """The flags of the last steps; empty: the method learned as it claims."""
        return self.report.flags

    @property
    def checks(self) -> tuple[HealthCheck, ...]:
        """Every health check with its outcome; empty for a run folder written before they were recorded."""
        return self.report.checks

    @property
    def effective_beta(self) -> float | None:
        """β × the mean token multiplier on completion tokens over the last steps."""
        return self.report.effective_beta

    @property
    def anchor_coverage(self) -> float | None:
        """TI-DPO with anchors: the share of training pairs that ever had one."""
        return self.report.anchor_coverage


def fingerprint_of(
    config: TrainConfig,
    model_path: str,
    pairs: Sequence[TokenizedPair],
    eval_pairs: Sequence[TokenizedPair] = (),
) -> str:
    """What a run computes: its settings (not how it is kept or shown), the model, the training pairs' tokens,
    and the held-out pairs' tokens when there are any (absent, the fingerprint is the one a run without them
    had before held-out pairs existed)."""
    settings = dataclasses.asdict(config)
    for key in _NOT_FINGERPRINTED:
        settings["training"].pop(key)
    token_ids = ([pair.prompt_ids, pair.chosen_ids, pair.rejected_ids] for pair in pairs)
    held_out = ([["held-out"], pair.prompt_ids, pair.chosen_ids, pair.rejected_ids] for pair in eval_pairs)
    return fingerprint({"config": settings, "model": str(model_path)}, itertools.chain(token_ids, held_out))[:32]


class RunFolder:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.final = self.root / "final"
        self.metrics = self.root / "metrics.jsonl"
        self.done = self.root / "DONE"
        self.token_scores = self.root / "token_scores.jsonl"
        self.config = self.root / "config.yaml"
        self.health = self.root / "health.json"

    # ---------------------------------------------------------------- what is there

    def finished(self, fingerprint: str) -> TrainResult | None:
        """The result of the finished run this folder holds, None when it holds none; raises
        :class:`TrainingError` when that run has another fingerprint."""
        if not self.done.is_file():
            return None
        done = json.loads(self.done.read_text())
        if done["fingerprint"] != fingerprint:
            raise TrainingError(
                f"{self.root}: holds a finished run of another configuration, model or data; "
                "choose another output folder"
            )
        return TrainResult(
            self.root, self.final, self.metrics, done["steps"], already_done=True, report=self.health_report()
        )

    def resume_point(self, resume: str, fingerprint: str) -> Path | None:
        """The checkpoint an unfinished run of ``fingerprint`` continues from (None: start afresh), as
        ``training.resume`` (``auto`` or ``never``) allows; raises :class:`TrainingError` otherwise.
        Only a checkpoint that holds the training state (not ``training.save_only_model``) is one to
        continue from: without the optimiser's moments the run would not be the same run."""
        latest = self.latest_checkpoint()
        if latest is None:
            if resume == "never" and self.metrics.is_file():
                raise TrainingError(
                    f"{self.root}: holds an unfinished run and training.resume is 'never'; choose another output folder"
                )
            return None
        if resume == "never":
            raise TrainingError(f"{self.root}: holds checkpoints of an unfinished run and training.resume is 'never'")
        if checkpoint_state(latest)["fingerprint"] != fingerprint:
            raise TrainingError(
                f"{self.root}: holds checkpoints of another configuration, model or data "
                f"({latest.name}); choose another output folder"
            )
        return self.latest_checkpoint(with_state=True)

    def health_report(self) -> HealthReport:
        """``health.json`` (empty when there is none; an older one has flags only)."""
        if not self.health.is_file():
            return HealthReport()
        return HealthReport.from_dict(json.loads(self.health.read_text()))

    def latest_checkpoint(self, with_state: bool = False) -> Path | None:
        """The newest checkpoint; ``with_state``: the newest that holds the training state."""
        steps = sorted(self.checkpoint_steps())
        if with_state:
            steps = [step for step in steps if (self.checkpoint(step) / "state").is_dir()]
        return self.checkpoint(steps[-1]) if steps else None

    def checkpoint(self, step: int) -> Path:
        """The folder of the checkpoint saved after ``step``."""
        return self.checkpoints / f"step-{step}"

    def checkpoint_steps(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        return [
            int(p.name[5:]) for p in self.checkpoints.iterdir() if p.name.startswith("step-") and p.name[5:].isdigit()
        ]

    # ---------------------------------------------------------------- writing

    def prepare(self, config_record: Mapping) -> None:
        """Create the folder, remove what a killed run left half-written, record the configuration."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        self.remove_partials()
        write_atomic(self.config, yaml.safe_dump(dict(config_record), sort_keys=False))

    def remove_partials(self) -> None:
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                for path in folder.glob(".partial-*"):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def keep_metrics_until(self, step: int) -> list[dict]:
        """A resumed run redoes the steps after its checkpoint: drop their rows (and any torn last line).
        Returns the rows kept."""
        if not self.metrics.is_file():
            return []
        kept, rows = [], []
        for line in self.metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", math.inf) <= step:
                kept.append(line + "\n")
                rows.append(row)
        write_atomic(self.metrics, "".join(kept))
        return rows

    def append_metrics(self, row: dict) -> None:
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def partial_checkpoint(self, step: int) -> Path:
        return self.checkpoints / f".partial-step-{step}"

    @property
    def partial_final(self) -> Path:
        return self.root / ".partial-final"

    @staticmethod
    def start_partial(partial: Path) -> None:
        """Empty ``partial`` (a ``.partial-*`` folder) to write into before it is renamed into place."""
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)

    def commit_checkpoint(self, partial: Path, step: int, keep: int | None) -> None:
        """``partial`` becomes ``checkpoints/step-N``; only the latest ``keep`` checkpoints stay."""
        replace_directory(partial, self.checkpoint(step))
        if keep is not None:
            for old in sorted(self.checkpoint_steps())[:-keep]:
                shutil.rmtree(self.checkpoint(old), ignore_errors=True)

    def commit_final(self, partial: Path, token_scores: list[dict], health: dict, done: dict) -> None:
        """``partial`` becomes ``final/``, then the token scores, the health report
        (:meth:`tokenpo.trainers.health.HealthReport.as_dict`) and, last, DONE."""
        replace_directory(partial, self.final)
        write_atomic(self.token_scores, "".join(json.dumps(row) + "\n" for row in token_scores))
        write_atomic(self.health, json.dumps(health, indent=1) + "\n")
        write_atomic(self.done, json.dumps(done, indent=1))


def checkpoint_state(checkpoint: Path) -> dict:
    """A checkpoint's ``trainer_state.json``: the step it was saved after, the run's fingerprint."""
    return json.loads((checkpoint / "trainer_state.json").read_text())
