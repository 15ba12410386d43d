"""Run untrusted Python programs (generated code plus its tests), each in its own sandbox.

Every program runs in a separate process (``_sandbox_child.py`` launches it) with:

- wall-clock and CPU time limits; a memory (address space) limit; a file-size limit that also caps
  what it prints (stdout/stderr go to files); a process-count limit; no core dumps;
- its own session and process group, killed as a whole when it ends or overruns; on Linux its own
  PID namespace, so nothing it starts outlives it;
- no network: an empty network namespace (every connection fails);
- a fresh working folder on a private tmpfs (its own mount namespace hides /tmp, /var/tmp and
  /dev/shm), and when the harness runs as root an unprivileged uid of its own, which can write
  nowhere else;
- a scrubbed environment (PATH, HOME, TMPDIR, LANG only) and ``python -I``.

As root the namespaces are created directly; as another user inside a user namespace (both paths
were checked on Linux 6.x: loops, fork bombs, network and writes outside fail the same way).
Where the kernel refuses a namespace (containers without the capability, non-Linux systems) the
run still has its limits, its process group and the scrubbed environment, and the outcome records
which isolation was achieved (``isolation``). Whatever the program does, :func:`run_program`
returns an :class:`Outcome`; it never raises because of the program.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_sandbox_child.py")
ISOLATION_PREFIX = "sandbox-isolation: "
# Each concurrent root sandbox gets its own uid from here, so RLIMIT_NPROC counts only its processes.
SANDBOX_UID_BASE = 612_000
_OUTPUT_KEPT = 2000


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one program run."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 2 << 30
    file_bytes: int = 4 << 20  # any file it writes, its stdout and stderr included
    max_processes: int = 16

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "file_bytes", "max_processes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Outcome:
    """How one program ended: ``passed``, and if not, a one-line ``reason``."""

    passed: bool
    reason: str
    returncode: int | None
    seconds: float
    isolation: str
    stdout: str = ""
    stderr: str = ""

    def to_json(self) -> dict:
        return asdict(self)


class _UidPool:
    """Hands out distinct sandbox uids to concurrent runs (only used when running as root)."""

    def __init__(self, size: int = 256):
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(size):
            self._free.put(SANDBOX_UID_BASE + index)

    def acquire(self) -> int:
        return self._free.get()

    def release(self, uid: int) -> None:
        self._free.put(uid)


_UIDS = _UidPool()


def _world_executable(path: str) -> bool:
    """True when a user with no privileges and no group can execute ``path`` (every folder on the way searchable)."""
    import stat

    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)
    except OSError:
        return False


def sandbox_python() -> str | None:
    """The interpreter an unprivileged sandbox uid can run: ours if reachable, else a system python3."""
    import shutil

    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"):
        if candidate and _world_executable(candidate):
            return os.path.realpath(candidate)
    return None


def _kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (a helper becomes that uid and signals -1)."""
    code = f"import os,signal; os.setgid({uid}); os.setuid({uid}); os.kill(-1, signal.SIGKILL)"
    subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, check=False)


def with_end_mark(program: str, mark: str) -> str:
    """``program`` followed by a statement writing ``mark`` to stderr. Only a program that runs to its end
    writes it, so one that exits with status 0 early (``sys.exit(0)``, ``os._exit(0)`` before its tests
    ran) does not pass."""
    return f"{program}\n\nimport os as _sandbox_os\n_sandbox_os.write(2, b'\\n{mark}\\n')\n"


def _read_tail(handle, limit: int = 4096) -> str:
    handle.seek(0, os.SEEK_END)
    handle.seek(max(0, handle.tell() - limit))
    return handle.read().decode("utf-8", errors="replace")


def _read_head(handle, limit: int = _OUTPUT_KEPT) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", errors="replace")


def _classify(
    returncode: int | None, timed_out: bool, stderr: str, limits: SandboxLimits, finished: bool = True
) -> tuple[bool, str]:
    if timed_out:
        return False, f"timeout: wall time limit of {limits.wall_seconds:g} s"
    if returncode == 0:
        if not finished:
            return False, "exited with status 0 before the end of the program (sys.exit or os._exit)"
        return True, "passed"
    signal_number = returncode - 128 if returncode is not None and returncode > 128 else None
    if returncode is not None and returncode < 0:
        signal_number = -returncode
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    if signal_number == signal.SIGXCPU or (signal_number == signal.SIGKILL and "cpu" in last.lower()):
        return False, f"cpu time limit of {limits.cpu_seconds} s"
    if signal_number == signal.SIGXFSZ or "[Errno 27] File too large" in stderr:
        return False, f"file size limit of {limits.file_bytes} bytes (output or files)"
    if "MemoryError" in stderr:
        return False, f"memory limit of {limits.memory_bytes} bytes: MemoryError"
    if "BlockingIOError" in stderr and "Resource temporarily unavailable" in stderr:
        return False, f"process limit of {limits.max_processes}: {last}"
    if signal_number is not None:
        return False, f"killed by signal {signal.Signals(signal_number).name}" if signal_number in set(
            signal.Signals
        ) else f"killed by signal {signal_number}"
    if last.startswith("AssertionError") or last == "AssertionError":
        return False, f"failed: {last}"
    return False, f"error (exit {returncode}): {last[:300]}" if last else f"error: exit code {returncode}"


def run_program(program: str, limits: SandboxLimits = SandboxLimits()) -> Outcome:
    """Run ``program`` (Python source) in a sandbox; passed means it ran to its end and exited with status 0."""
    import time

    # As root, drop to an unprivileged uid of its own when some interpreter is reachable by it.
    python = sandbox_python() if os.geteuid() == 0 else None
    uid = _UIDS.acquire() if python else None
    started = time.monotonic()
    mark = f"sandbox-end-{secrets.token_hex(8)}"  # unknown to the program until it runs
    job = {
        "program": with_end_mark(program, mark),
        "limits": asdict(limits),
        "uid": uid,
        "python": python or sys.executable,
    }
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            )
            timed_out = False
            try:
                process.communicate(json.dumps(job).encode(), timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(process.pid)
                process.wait()
            stderr = _read_head(err, 64_000)
            isolation, _, stderr = stderr.partition("\n") if stderr.startswith(ISOLATION_PREFIX) else ("", "", stderr)
            if uid is not None and "pid" not in isolation.removeprefix(ISOLATION_PREFIX).split(","):
                # Without a PID namespace a process of the uid may have left the group: kill the uid's
                # processes. In one, the kernel killed them all with its PID 1 (a third interpreter
                # per program saved: a third of the judge's time on HumanEval).
                _kill_uid(uid)
            finished = mark in _read_tail(err)
            stderr = stderr.replace(f"\n{mark}\n", "")
            passed, reason = _classify(process.returncode, timed_out, stderr, limits, finished)
            return Outcome(
                passed=passed,
                reason=reason,
                returncode=process.returncode,
                seconds=round(time.monotonic() - started, 3),
                isolation=isolation.removeprefix(ISOLATION_PREFIX) or "unknown",
                stdout=_read_head(out),
                stderr=stderr[-_OUTPUT_KEPT:],
            )
    finally:
        if uid is not None:
            _UIDS.release(uid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_many(
    programs: Sequence[str],
    limits: SandboxLimits = SandboxLimits(),
    workers: int | None = None,
    progress: bool = False,
    description: str = "sandbox",
) -> list[Outcome]:
    """Run every program in its own sandbox, ``workers`` at a time (default: the CPU count)."""
    workers = max(1, workers or os.cpu_count() or 1)
    results: list[Outcome | None] = [None] * len(programs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(programs), desc=description, unit="program")
    lock = threading.Lock()

    def work(index: int) -> None:
        results[index] = run_program(programs[index], limits)
        if bar is not None:
            with lock:
                bar.update(1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(programs))))
    if bar is not None:
        bar.close()
    return [result for result in results if result is not None]
