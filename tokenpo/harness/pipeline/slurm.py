"""A run's unfinished stages as Slurm jobs (through ``submitit``), and their state read back.

Each job runs ``harness run FROZEN --stage NAME`` (``FROZEN``: the resolved configuration, written
once into ``OUT/slurm/``), so it skips a finished stage and resumes a killed one exactly as a local
run does. Trainings go as one job array capped at ``array_parallelism``; each evaluation waits for
its training (``afterok``), the report for every evaluation, and a job whose dependency failed is
cancelled rather than left pending (``kill-on-invalid-dep``). Jobs are ``submitit`` checkpointable:
on preemption or time-out they are requeued and continue from their checkpoint.

``OUT/slurm/jobs.json`` records the job of each stage. A second ``harness run`` submits only the
stages that are neither finished (their marker) nor queued (``squeue``): a job that died or was
cancelled is submitted again. State comes from the stage markers and ``squeue`` alone, so no
accounting database (``sacct``) is needed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core.config import dump_yaml, to_mapping
from tokenpo.core.files import write_atomic
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.pipeline.executor import SlurmSettings
from tokenpo.harness.pipeline.stages import PlannedStage

FOLDER, JOBS, FROZEN = "slurm", "jobs.json", "run-config.yaml"
QUEUED = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "STAGE_OUT", "SIGNALING"}  # fmt: skip


@dataclass
class StageState:
    """One stage as ``harness run --status`` shows it."""

    stage: str
    state: str  # done, pending, running, …, failed, not submitted
    job: str | None = None
    detail: str = ""  # a failed job's last log lines


class StageJob:
    """A stage's command, run inside a Slurm job. On several nodes each node's task learns its rank and
    the main node from Slurm's environment (``accelerate launch --machine_rank``, ``--main_process_ip``)."""

    def __init__(self, command: list[str]):
        self.command = command

    def __call__(self) -> None:
        command = list(self.command)
        if int(os.environ.get("SLURM_NNODES", "1")) > 1 and "--machine_rank" in command:
            hosts = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                                   capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            command[command.index("--machine_rank") + 1] = os.environ["SLURM_NODEID"]
            command[command.index("--main_process_ip") + 1] = hosts[0]
        subprocess.run(command, check=True)

    def checkpoint(self) -> Any:
        """On preemption or time-out: the same command again (the stage resumes from what it wrote)."""
        import submitit

        return submitit.helpers.DelayedSubmission(StageJob(self.command))


def freeze(config: Any, output: Path) -> Path:
    """The resolved configuration as YAML (the sweep already expanded) for the jobs to read."""
    frozen = to_mapping(config)
    frozen["sweep"] = None
    path = output / FOLDER / FROZEN
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, dump_yaml(frozen))
    return path


def stage_command(frozen: Path, stage: PlannedStage, settings: SlurmSettings) -> list[str]:
    """The command a job runs for ``stage``: in one process, or a training through ``accelerate launch``."""
    harness = ["-m", "tokenpo", "run", str(frozen), "--stage", stage.name, "--no-progress"]
    several = settings.processes_per_node > 1 or settings.nodes > 1 or settings.accelerate_config is not None
    if not (stage.kind == "train" and several):
        return [sys.executable, *harness]
    launch = [sys.executable, "-m", "accelerate.commands.launch",
              "--num_processes", str(settings.processes_per_node * settings.nodes)]  # fmt: skip
    if settings.accelerate_config is not None:
        launch += ["--config_file", settings.accelerate_config]
    else:  # one process per GPU of the node, through torchrun (DDP)
        launch += ["--multi_gpu", "--num_machines", "1"]
    if settings.nodes > 1:
        launch += ["--num_machines", str(settings.nodes), "--machine_rank", "0", "--main_process_ip", "localhost"]
    return [*launch, *harness]


def queue_states() -> dict[str, str]:
    """Every queued job (array tasks one by one) with its state, from ``squeue``."""
    try:
        listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise HarnessError("executor: slurm: squeue not found (is this a Slurm login node?)") from None
    if listed.returncode != 0:
        raise HarnessError(f"executor: slurm: squeue failed: {listed.stderr.strip()[:200]}")
    return dict(line.split("|", 1) for line in listed.stdout.split() if "|" in line)


def read_jobs(output: Path) -> dict[str, dict[str, Any]]:
    path = output / FOLDER / JOBS
    return json.loads(path.read_text()) if path.is_file() else {}


def _tail(path: str | None, lines: int = 3) -> str:
    if not path or not Path(path).is_file():
        return ""
    text = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(text[-lines:])[:400]


def status(pipeline: Any) -> list[StageState]:
    """Each stage's state: done (its marker), queued (``squeue``), failed (with its log), or not submitted."""
    jobs, queue = read_jobs(pipeline.output), queue_states()
    states = []
    for planned in pipeline.plan():
        job = jobs.get(planned.name)
        if pipeline.stage_done(planned.name):
            states.append(StageState(planned.name, "done", job and job["job"]))
        elif job is None:
            states.append(StageState(planned.name, "not submitted"))
        elif job["job"] in queue:
            states.append(StageState(planned.name, queue[job["job"]].lower(), job["job"]))
        else:
            states.append(StageState(planned.name, "failed", job["job"], _tail(job.get("stderr"))))
    return states


def submit(pipeline: Any, settings: SlurmSettings) -> list[tuple[str, str, list[str]]]:
    """Submit every stage that is neither finished nor queued; ``(stage, job, jobs it waits for)`` each."""
    try:
        import submitit
    except ImportError:
        raise HarnessError("executor: slurm needs submitit: pip install 'tokenpo-harness[slurm]'") from None

    output = pipeline.output
    frozen = freeze(pipeline.config, output)
    jobs, queue = read_jobs(output), queue_states()
    waiting_on = {name: job["job"] for name, job in jobs.items() if job["job"] in queue}
    plan = [s for s in pipeline.plan() if not pipeline.stage_done(s.name) and s.name not in waiting_on]
    executor = submitit.SlurmExecutor(folder=output / FOLDER / "%j", python=sys.executable)
    submitted: list[tuple[str, str, list[str]]] = []
    index = 0
    while index < len(plan):
        group = [plan[index]]
        if plan[index].kind == "train":  # consecutive trainings: one array
            while index + len(group) < len(plan) and plan[index + len(group)].kind == "train":
                group.append(plan[index + len(group)])
        index += len(group)
        after = sorted({waiting_on[d] for stage in group for d in stage.after if d in waiting_on}, key=_job_order)
        executor.update_parameters(**_parameters(settings, group[0], after, len(group)))
        commands = [StageJob(stage_command(frozen, stage, settings)) for stage in group]
        if len(group) > 1:
            with executor.batch():
                handles = [executor.submit(job) for job in commands]
        else:
            handles = [executor.submit(commands[0])]
        for stage, handle in zip(group, handles, strict=True):
            waiting_on[stage.name] = handle.job_id
            jobs[stage.name] = {"job": handle.job_id, "stderr": str(handle.paths.stderr), "after": after,
                                "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
            submitted.append((stage.name, handle.job_id, after))
    write_atomic(output / FOLDER / JOBS, json.dumps(jobs, indent=2) + "\n")
    return submitted


def _job_order(job: str) -> tuple[int, ...]:
    """``12`` before ``12_3`` before ``110``: job ids in submission order."""
    return tuple(int(part) for part in job.split("_") if part.isdigit())


def _parameters(settings: SlurmSettings, stage: PlannedStage, after: list[str], count: int) -> dict[str, Any]:
    training = stage.kind == "train"
    extra: dict[str, Any] = {"kill-on-invalid-dep": "yes", **settings.extra}
    if after:
        extra["dependency"] = "afterok:" + ":".join(after)
    if settings.account:
        extra["account"] = settings.account
    parameters: dict[str, Any] = {
        "job_name": f"tokenpo-{stage.kind}",
        "time": settings.train_minutes if training else settings.eval_minutes,
        "cpus_per_task": settings.cpus_per_task,
        "nodes": settings.nodes if training else 1,
        "ntasks_per_node": 1,
        "additional_parameters": extra,
    }
    gpus = settings.gpus_per_node if training else settings.eval_gpus
    if gpus:
        parameters["gpus_per_node"] = gpus
    if settings.partition:
        parameters["partition"] = settings.partition
    if settings.mem_gb is not None:
        parameters["mem"] = f"{settings.mem_gb}GB"
    if count > 1:
        parameters["array_parallelism"] = settings.array_parallelism
    return parameters


def describe(submitted: list[tuple[str, str, list[str]]]) -> str:
    """The job graph, one line per job: ``train/dpo-seed0  job 12_0  after 11``."""
    if not submitted:
        return "nothing to submit: every stage is finished or queued"
    width = max(len(stage) for stage, _, _ in submitted)
    return "\n".join(
        f"{stage:{width}}  job {job}" + (f"  after {shlex.join(after)}" if after else "")
        for stage, job, after in submitted
    )
