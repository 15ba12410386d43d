"""Compute threads sized to the cores a process may really use: affinity, cgroup quota, Slurm's share."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tokenpo.core.cores import SPIN_VARIABLES, THREAD_VARIABLES, Cores, cgroup_quota, size_threads, usable_cores

MACHINE = len(os.sched_getaffinity(0))


def v2_tree(tmp_path: Path, limits: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup v2 hierarchy with ``cpu.max`` per folder, and a /proc/self/cgroup naming ``/a/b``."""
    root = tmp_path / "cgroup"
    for folder, cpu_max in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(cpu_max + "\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/a/b\n")
    return root, proc


def test_v2_quota_is_the_tightest_along_the_hierarchy(tmp_path):
    root, proc = v2_tree(tmp_path, {"a": "150000 100000", "a/b": "max 100000"})
    assert cgroup_quota(root, proc) == 1.5
    root, proc = v2_tree(tmp_path / "2", {"a": "max 100000", "a/b": "50000 100000"})
    assert cgroup_quota(root, proc) == 0.5


def test_v1_quota_and_unlimited(tmp_path):
    mount = tmp_path / "cgroup" / "cpu,cpuacct" / "job"
    mount.mkdir(parents=True)
    (mount / "cpu.cfs_quota_us").write_text("300000\n")
    (mount / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/job\n3:cpu,cpuacct:/job\n")
    assert cgroup_quota(tmp_path / "cgroup", proc) == 3.0
    (mount / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(tmp_path / "cgroup", proc) is None
    assert cgroup_quota(tmp_path / "cgroup", tmp_path / "absent") is None


def test_usable_cores_takes_the_smallest_limit(tmp_path):
    root, proc = v2_tree(tmp_path, {"a/b": "50000 100000"})  # half a core: rounded up to one
    assert usable_cores(root, proc, environ={}).count == 1
    assert usable_cores(root, proc, environ={}).limited_by == "cgroup"
    unlimited, proc = v2_tree(tmp_path / "u", {"a/b": "max 100000"})
    assert usable_cores(unlimited, proc, environ={}).count == MACHINE
    in_job = {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "1"}
    if MACHINE > 1:
        assert usable_cores(unlimited, proc, environ=in_job) == Cores(1, "slurm")
    # SLURM_CPUS_PER_TASK outside a job (an exported leftover) is not a limit
    assert usable_cores(unlimited, proc, environ={"SLURM_CPUS_PER_TASK": "1"}).count == MACHINE


def test_size_threads_exports_the_count_and_keeps_the_users_choice():
    environ = {"OMP_NUM_THREADS": "3"}
    cores = size_threads(environ)
    assert environ["OMP_NUM_THREADS"] == "3"  # the user's
    assert all(environ[name] == str(cores.count) for name in THREAD_VARIABLES if name != "OMP_NUM_THREADS")
    assert environ["GOMP_SPINCOUNT"] == "1000"
    kept = {"GOMP_SPINCOUNT": "300000"}
    size_threads(kept)
    assert kept["GOMP_SPINCOUNT"] == "300000"


@pytest.mark.skipif(MACHINE < 2, reason="needs 2 cores to restrict a process to fewer")
def test_the_harness_executable_sizes_threads_before_torch_loads():
    """`harness` pinned to one core of several: the sizing runs before anything imports torch (OpenMP reads
    its settings once, then), torch runs one thread, and children inherit the settings."""
    code = textwrap.dedent("""
        import os, sys
        os.sched_setaffinity(0, {0})
        import tokenpo.core.cores as cores
        sized = cores.size_threads
        def recording(*args):
            print("torch loaded before sizing:", "torch" in sys.modules)
            return sized(*args)
        cores.size_threads = recording
        sys.argv = ["harness", "models", "list"]
        from tokenpo.harness.entry import main
        main()
        import torch
        print(torch.get_num_threads(), os.environ["OMP_NUM_THREADS"], os.environ["GOMP_SPINCOUNT"])
        """)
    env = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARIABLES, *SPIN_VARIABLES)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "torch loaded before sizing: False" in out
    assert out.split()[-3:] == ["1", "1", "1000"]
