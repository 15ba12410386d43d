"""Where a run's stages execute: here, one after another (``local``), or as Slurm jobs (``slurm``).

The settings live in the run config's ``executor:`` block. With Slurm, every stage that has not
finished becomes a job running ``harness run FROZEN --stage NAME``, where ``FROZEN`` is the run's
resolved configuration written once into the run's folder, so a job computes the same fingerprints
as the submitting process, and a job that dies resumes from the stage's checkpoint or journal
like a killed local run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tokenpo.core.config import field_error


@dataclass
class SlurmSettings:
    """How stages become Slurm jobs (through ``submitit``)."""

    partition: str | None = field(
        default=None, metadata={"help": "the partition (sbatch --partition); null: the cluster's default"}
    )
    account: str | None = field(default=None, metadata={"help": "the account jobs are charged to; null: yours"})
    train_minutes: int = field(default=240, metadata={"help": "time limit of a training job, minutes"})
    eval_minutes: int = field(default=240, metadata={"help": "time limit of an evaluation (and data, report) job"})
    gpus_per_node: int = field(default=0, metadata={"help": "GPUs a training job asks for per node"})
    eval_gpus: int = field(default=0, metadata={"help": "GPUs an evaluation job asks for"})
    cpus_per_task: int = field(default=2, metadata={"help": "CPUs per job (per node)"})
    mem_gb: float | None = field(default=None, metadata={"help": "memory per node, GB; null: the partition's default"})
    nodes: int = field(default=1, metadata={"help": "nodes per training job (multi-node needs accelerate_config)"})
    processes_per_node: int = field(
        default=1,
        metadata={
            "help": "training processes per node through `accelerate launch` (one per GPU); 1: in the job's own process"
        },
    )
    accelerate_config: str | None = field(
        default=None,
        metadata={"help": "an `accelerate config` file for training jobs (DDP, FSDP, DeepSpeed, several nodes)"},
    )
    array_parallelism: int = field(
        default=4, metadata={"help": "training jobs of one submission running at once (the job array's cap)"}
    )
    extra: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "more sbatch options, name: value (e.g. qos: high, constraint: a100)"},
    )

    def __post_init__(self) -> None:
        for name in ("train_minutes", "eval_minutes", "cpus_per_task", "nodes", "processes_per_node",
                     "array_parallelism"):  # fmt: skip
            if getattr(self, name) < 1:
                raise field_error(name, f"must be a positive integer, got {getattr(self, name)}")
        for name in ("gpus_per_node", "eval_gpus"):
            if getattr(self, name) < 0:
                raise field_error(name, f"must be 0 or more, got {getattr(self, name)}")
        if self.nodes > 1 and self.accelerate_config is None:
            raise field_error("nodes", "training on several nodes needs accelerate_config (machines, main process)")


@dataclass
class ExecutorConfig:
    """Where the stages run."""

    kind: Literal["local", "slurm"] = field(
        default="local",
        metadata={
            "help": "local: every stage here, one after another; slurm: each unfinished stage a Slurm job "
            "(training as a job array, evaluation after its training, the report after all)"
        },
    )
    slurm: SlurmSettings = field(default_factory=SlurmSettings, metadata={"help": "the Slurm executor's settings"})
