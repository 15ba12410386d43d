"""The models a pipeline evaluates: the base model, each trained run's final model and the checkpoints
evaluated on the way, and what their results record about them (the ``harness`` block)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenpo.harness.pipeline.config import BASE, RunConfig
from tokenpo.harness.pipeline.stages import Stage


@dataclass
class EvaluatedModel:
    """A model the pipeline evaluates: the base model, one trained run's final model, or one of its checkpoints."""

    label: str
    method: str
    seed: int | None
    path: str
    key: str  # fingerprint of what produced the weights
    family: str = BASE  # the method's label whatever its hyper-parameters (e.g. "sparsepo-learned-common")
    beta: float | None = None
    health: list[dict] | None = None  # training-health flags; None: not checked (the base model)
    effective_beta: float | None = None  # β × the mean token multiplier it trained with (health.json)
    step: int = 0  # optimiser steps the weights had trained (the base model 0)
    final: bool = True  # False for a checkpoint evaluated on the way
    run_folder: Path | None = None  # the training run's folder (its checkpoints/)

    @classmethod
    def trained(cls, run, seed: int, stage: Stage, summary: dict) -> EvaluatedModel:
        """A trained run's final model as its finished training stage recorded it."""
        return cls(
            f"{run.name}-seed{seed}",
            run.name,
            seed,
            summary["final"],
            stage.key,
            run.method.label,
            run.method.beta,
            summary.get("health"),
            summary.get("effective_beta"),
            summary.get("steps", 0),
            True,
            stage.folder,
        )

    def metadata(self, config: RunConfig) -> dict:
        """The results' ``harness`` block: what the leaderboard groups, pairs, flags and orders by."""
        metadata = {
            "model_spec": config.model if self.method == BASE else self.path,
            "base_model": config.model,
            "method": self.method,
            "seed": self.seed,
            "run": config.name,
            "method_family": self.family,
            "beta": self.beta,
            "step": self.step,
            "final": self.final,
        }
        if self.health is not None:
            metadata["training_health"] = self.health
        if self.effective_beta is not None:
            metadata["effective_beta"] = self.effective_beta
        return metadata
