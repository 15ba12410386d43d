"""The cores this process may really use, and compute threads sized to them.

torch, OpenMP, MKL and the tokenizers' Rayon pool each size themselves to the machine (or at best
to the CPU affinity mask). A process held to fewer cores by a cgroup CPU quota (containers,
systemd, Slurm with cgroups) or told its share by Slurm (``SLURM_CPUS_PER_TASK``) then runs more
compute threads than it has cores: every parallel region waits for its slowest thread, and a
thread that is not scheduled stalls all the others, so the run slows far more than its lost share.
:func:`size_threads` caps every pool at :func:`usable_cores` and lets waiting OpenMP threads sleep
soon (a spinning one holds a core that a busy neighbour process shares), unless the user chose
otherwise (variables already set are left alone), and exports the settings so processes started
from here (evaluations, servers) inherit them.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# What each pool reads; torch's intra-op pool is OpenMP's.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
# GNU OpenMP (torch's on Linux) lets a thread that waits at the end of a parallel region spin 300,000
# times before it sleeps. When another process is busy on the same cores, the spinning thread holds the
# core its own straggler needs, and a training step on 2 cores beside one busy process took 7.5 s
# instead of 0.89 s alone. 1,000 spins keep the speed alone (0.89 s) and give 1.76 s beside it: the
# share of the cores it lost (docs/quickstart.md#time).
SPIN_VARIABLES = {"GOMP_SPINCOUNT": "1000"}


@dataclass(frozen=True)
class Cores:
    """How many cores the process may use, and which limit decided it."""

    count: int
    limited_by: str  # "machine", "affinity", "cgroup", "slurm"


def usable_cores(
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    proc_cgroup: Path = Path("/proc/self/cgroup"),
    environ: dict[str, str] | None = None,
) -> Cores:
    """The smallest of: the machine's cores, the affinity mask, the cgroup CPU quota (rounded up) and
    Slurm's ``SLURM_CPUS_PER_TASK`` inside a Slurm job."""
    environ = os.environ if environ is None else environ
    limits = {"machine": os.cpu_count() or 1}
    if hasattr(os, "sched_getaffinity"):
        limits["affinity"] = len(os.sched_getaffinity(0))
    quota = cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        limits["cgroup"] = max(1, math.ceil(quota))
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    if environ.get("SLURM_JOB_ID") and slurm.isdigit() and int(slurm) > 0:
        limits["slurm"] = int(slurm)
    limited_by = min(limits, key=lambda name: limits[name])
    return Cores(limits[limited_by], limited_by)


def cgroup_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota in cores of the process's cgroup and its ancestors (the tightest), or None when unlimited.
    cgroup v2: ``cpu.max`` holds ``QUOTA PERIOD`` or ``max PERIOD``; v1: ``cpu.cfs_quota_us`` (-1: none) over
    ``cpu.cfs_period_us``."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2's unified hierarchy
            quotas += [_v2_quota(folder / "cpu.max") for folder in _ancestors(cgroup_root, path)]
        elif "cpu" in controllers.split(","):
            mount = cgroup_root / controllers
            quotas += [_v1_quota(folder) for folder in _ancestors(mount, path)]
    found = [quota for quota in quotas if quota is not None]
    return min(found) if found else None


def size_threads(environ: dict[str, str] | None = None) -> Cores:
    """Size every compute pool to :func:`usable_cores` unless the user set it (see the module docstring).
    Call before torch is imported where possible: OpenMP and Rayon read their variables once, when loaded."""
    environ = os.environ if environ is None else environ
    cores = usable_cores(environ=environ)
    for variable in THREAD_VARIABLES:
        environ.setdefault(variable, str(cores.count))
    for variable, value in SPIN_VARIABLES.items():
        environ.setdefault(variable, value)
    torch = sys.modules.get("torch")  # torch reads OMP_NUM_THREADS when imported; once imported, it is told
    if torch is not None and environ["OMP_NUM_THREADS"].isdigit():
        torch.set_num_threads(int(environ["OMP_NUM_THREADS"]))
    return cores


def _ancestors(root: Path, path: str) -> list[Path]:
    parts = [part for part in path.split("/") if part]
    return [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_quota(cpu_max: Path) -> float | None:
    try:
        quota, period = cpu_max.read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 else quota / period
