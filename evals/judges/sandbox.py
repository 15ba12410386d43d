"""Run untrusted Python programs (generated code plus its tests), each in its own sandbox.

Every program runs in a separate process, a fresh fork of a warm launcher (``_sandbox_child.py``,
one per worker, started with the interpreter and flags the program gets: ``python -I``), with:

- wall-clock and CPU time limits; a memory (address space) limit; a file-size limit that also caps
  what it prints (stdout/stderr go to files); a process-count limit; no core dumps;
- its own session and process group, killed as a whole when it ends or overruns; on Linux its own
  PID namespace, so nothing it starts outlives it;
- no network: an empty network namespace (every connection fails);
- a fresh working folder on a private tmpfs (its own mount namespace hides /tmp, /var/tmp and
  /dev/shm), and when the harness runs as root an unprivileged uid of its own, which can write
  nowhere else;
- a scrubbed environment (PATH, HOME, TMPDIR, LANG, PYTHONDONTWRITEBYTECODE, PYTHONHASHSEED only)
  and ``python -I``; stdin is /dev/null and no descriptor but stdout and stderr is open.

The program runs in the sandboxed fork itself rather than in a second, exec'ed interpreter (about 55
ms per program saved): what it shares with the launcher is the interpreter's state before any job
(standard-library modules already imported, the string hash seed), nothing secret and nothing that
crosses the namespaces, uid or limits.

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
import socket
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


class _Launcher:
    """A warm launcher (``_sandbox_child.py``, already started and imported) that forks one sandbox per program.

    Each program used to cost two interpreter starts, the launcher's and the program's (about 55 of
    its 80 ms). The launcher is now started once per worker, with the interpreter and flags the program
    gets (``python -I``, the sandbox uid's python), and runs the program in the sandboxed fork itself:
    the fork gets the same namespaces, limits, uid, folder and environment as before.
    """

    def __init__(self, python: str):
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [python, "-I", str(LAUNCHER), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            )
        finally:
            theirs.close()
        self.python, self.sock, self.alive = python, ours, True

    def run(self, job: dict, out, err, reply_seconds: float) -> dict | None:
        """Hand one job and its output files to the launcher; its report, or None if the launcher failed."""
        data = json.dumps(job).encode()
        try:
            socket.send_fds(self.sock, [len(data).to_bytes(8, "big")], [out.fileno(), err.fileno()])
            self.sock.sendall(data)
            self.sock.settimeout(reply_seconds)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            if reply.endswith(b"\n"):
                return json.loads(reply)
        except OSError:
            pass
        self.close()
        return None

    def close(self) -> None:
        self.alive = False
        self.sock.close()  # the launcher's loop ends on EOF
        try:
            self.process.wait(timeout=5)  # its group is itself alone: each sandbox has its own session
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid)
            self.process.wait()


def _launcher_python() -> tuple[str, bool]:
    """The interpreter for launcher and programs, and whether programs get a uid of their own (as root, when
    some interpreter is reachable by an unprivileged uid)."""
    python = sandbox_python() if os.geteuid() == 0 else None
    return python or sys.executable, python is not None


def run_program(program: str, limits: SandboxLimits = SandboxLimits()) -> Outcome:
    """Run ``program`` (Python source) in a sandbox; passed means it ran to its end and exited with status 0."""
    launcher = _Launcher(_launcher_python()[0])
    try:
        return _run(program, limits, launcher)
    finally:
        launcher.close()


def _run(program: str, limits: SandboxLimits, launcher: _Launcher) -> Outcome:
    import time

    uid = _UIDS.acquire() if _launcher_python()[1] else None
    started = time.monotonic()
    mark = f"sandbox-end-{secrets.token_hex(8)}"  # unknown to the program until it runs
    job = {"program": with_end_mark(program, mark), "limits": asdict(limits), "uid": uid}
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # The launcher enforces the wall time; the margin only guards against the launcher itself failing.
            report = launcher.run(job, out, err, limits.wall_seconds + 30)
            if report is None:
                returncode, timed_out = None, False
            else:
                status, timed_out = report["status"], report["timed_out"]
                returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            stderr = _read_head(err, 64_000)
            isolation, _, stderr = stderr.partition("\n") if stderr.startswith(ISOLATION_PREFIX) else ("", "", stderr)
            if uid is not None and "pid" not in isolation.removeprefix(ISOLATION_PREFIX).split(","):
                # Without a PID namespace a process of the uid may have left the group: kill the uid's
                # processes. In one, the kernel killed them all with its PID 1 (a third interpreter
                # per program saved: a third of the judge's time on HumanEval).
                _kill_uid(uid)
            finished = mark in _read_tail(err)
            stderr = stderr.replace(f"\n{mark}\n", "")
            if report is None:
                passed, reason = False, "error: the sandbox launcher failed"
            else:
                passed, reason = _classify(returncode, timed_out, stderr, limits, finished)
            return Outcome(
                passed=passed,
                reason=reason,
                returncode=returncode,
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
    local = threading.local()  # each worker thread keeps one warm launcher
    launchers: list[_Launcher] = []

    def work(index: int) -> None:
        launcher = getattr(local, "launcher", None)
        if launcher is None or not launcher.alive:
            local.launcher = launcher = _Launcher(_launcher_python()[0])
            with lock:
                launchers.append(launcher)
        results[index] = _run(programs[index], limits, launcher)
        if bar is not None:
            with lock:
                bar.update(1)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, range(len(programs))))
    finally:
        for launcher in launchers:
            if launcher.alive:
                launcher.close()
    if bar is not None:
        bar.close()
    return [result for result in results if result is not None]
