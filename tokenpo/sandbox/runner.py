"""Run untrusted Python programs against their tests, each program in its own sandbox, the verdict outside it.

A job (:class:`CodeJob`) is a program (model-written code), and optionally tests, a trusted prelude
and the names the tests call in the program. The tests do not run in the program's process: they run
in a trusted tester process, and each call of a program function is a round trip whose arguments and
result cross as plain data (:mod:`tokenpo.sandbox.wire`). So the program cannot see the tests
or their expected values, cannot hand the tests an object that compares equal to everything, cannot
end the process "successfully" before the tests ran, and cannot write its own verdict. A job
without tests passes when its program runs to its end without an error (what the program itself
controls: use tests for judging).

Each program runs in a sandbox built per job by a warm launcher (``launcher.py``, one per worker):
its process is a fresh interpreter (an ``exec``, never a fork of anything that held another job),
in a minimal root holding only the Python runtime, in new namespaces and a cgroup of its own, under
a uid of its own, no-new-privileges, a seccomp filter and resource limits (``docs/sandbox.md``).

Where the kernel refuses one of these, the run goes on with the rest and the outcome names what is
``missing`` (``require=`` refuses to run without the protections listed). Whatever the program does,
:func:`run_program` and :func:`run_many` return an :class:`Outcome`; they never raise because of it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from tokenpo.core import progress
from tokenpo.sandbox import runtime, wire
from tokenpo.sandbox.jobs import DEFAULT_LIMITS, CodeJob, Outcome, SandboxLimits
from tokenpo.sandbox.launcher import PROTECTIONS
from tokenpo.sandbox.reasons import classify

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
_OUTPUT_KEPT = 2000
# Sandbox uids: each program gets the next one of a range drawn at random per run, so no uid (and no
# kernel state tied to it, such as its keyring) is shared with another program or another run.
_UID_LOW, _UID_HIGH, _UID_SPAN = 1 << 20, 1 << 31, 1 << 22


class IsolationMissing(RuntimeError):
    """A required protection is not available here."""


def check_protections(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` validated against :data:`PROTECTIONS` (ValueError naming the unknown one)."""
    names = tuple(n.strip() for n in names if n.strip())
    for name in names:
        if name not in PROTECTIONS:
            raise ValueError(f"unknown protection {name!r}; known: {', '.join(PROTECTIONS)}")
    return names


@dataclass
class _Uids:
    next_uid: Iterable[int] = field(
        default_factory=lambda: itertools.count(
            _UID_LOW + secrets.randbelow((_UID_HIGH - _UID_LOW) // _UID_SPAN) * _UID_SPAN
        )
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int:
        with self.lock:
            return next(self.next_uid)


_UIDS = _Uids()


def _world_executable(path: str) -> bool:
    """True when a user with no privileges and no group can execute ``path`` (every folder on the way searchable)."""
    import stat
    from pathlib import Path

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


def _launcher_python() -> tuple[str, bool]:
    """The interpreter for launcher and programs, and whether programs get a uid of their own (as root, when
    some interpreter is reachable by an unprivileged uid)."""
    python = sandbox_python() if os.geteuid() == 0 else None
    return python or sys.executable, python is not None


def _read_head(handle, limit: int = _OUTPUT_KEPT) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", errors="replace")


class _Launcher:
    """A warm launcher (``launcher.py``, already started and imported) that forks one job per program."""

    def __init__(self, python: str):
        ours, theirs = socket.socketpair()
        described = runtime.described(python)
        try:
            self.process = subprocess.Popen(
                [python, "-I", LAUNCHER, str(theirs.fileno()), described],
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

    def run(self, header: dict, body: dict, out, err, reply_seconds: float) -> dict | None:
        """Hand one job to the launcher (the header on the socket, the body as a file it never reads)."""
        data = json.dumps(header).encode()
        try:
            with tempfile.TemporaryFile() as body_file:
                body_file.write(json.dumps(body).encode())
                body_file.flush()
                body_file.seek(0)
                socket.send_fds(
                    self.sock, [len(data).to_bytes(4, "big")], [out.fileno(), err.fileno(), body_file.fileno()]
                )
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
        self.sock.close()  # the launcher's loop ends on EOF and removes its cgroup
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid)
            self.process.wait()


def _as_job(item: CodeJob | str) -> CodeJob:
    return item if isinstance(item, CodeJob) else CodeJob(program=item)


def run_program(program: CodeJob | str, limits: SandboxLimits = DEFAULT_LIMITS, require: Sequence[str] = ()) -> Outcome:
    """Run one program (and its tests) in a sandbox."""
    return run_many([program], limits, workers=1, description=None, require=require)[0]


def _run(
    job: CodeJob, limits: SandboxLimits, launcher: _Launcher, own_uid: bool, without: tuple[str, ...] = ()
) -> Outcome:
    started = time.monotonic()
    own_uid = own_uid and "uid" not in without
    header = {"limits": asdict(limits), "uid": _UIDS.take() if own_uid else None, "without": list(without)}
    body = {"program": job.program, "tests": job.tests, "prelude": job.prelude, "remote": list(job.remote)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # The launcher enforces the wall time; the margin only guards against the launcher itself failing.
        report = launcher.run(header, body, out, err, limits.wall_seconds + 30)
        passed, reason, returncode = classify(report, limits)
        achieved = [*(report or {}).get("isolation", []), *(report or {}).get("hardening", [])]
        return Outcome(
            passed=passed,
            reason=wire.safe_text(reason, 2000),
            returncode=returncode,
            seconds=round(time.monotonic() - started, 3),
            isolation=",".join(achieved) or "unknown",
            stdout=_read_head(out),
            stderr=_read_head(err, 64_000)[-_OUTPUT_KEPT:],
            missing=",".join(p for p in PROTECTIONS if p not in achieved) if report and "isolation" in report else "",
            calls=int((report or {}).get("calls", 0)),
            tester_bytes=int((report or {}).get("tester_bytes", 0)),
        )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_many(
    programs: Sequence[CodeJob | str],
    limits: SandboxLimits = DEFAULT_LIMITS,
    workers: int | None = None,
    description: str | None = "sandbox",
    require: Sequence[str] = (),
    without: Sequence[str] = (),
) -> list[Outcome]:
    """Run every program in its own sandbox, ``workers`` at a time (default: the CPU count).

    ``require``: protections (names from :data:`PROTECTIONS`) without which no program may run; when
    the first program shows one missing, :class:`IsolationMissing` is raised before any verdict counts.
    ``without``: protections to leave out on purpose (for measuring what each one costs; the outcomes
    list them as missing). Progress is reported as the task ``description`` (None: not reported,
    e.g. for the one problem at a time lm-eval's metric scores).
    """
    require, without = check_protections(require), check_protections(without)
    jobs = [_as_job(p) for p in programs]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    python, own_uid = _launcher_python()
    results: list[Outcome | None] = [None] * len(jobs)
    lock = threading.Lock()
    local = threading.local()  # each worker thread keeps one warm launcher
    launchers: list[_Launcher] = []

    def work(index: int, bar: progress.Task) -> None:
        launcher = getattr(local, "launcher", None)
        if launcher is None or not launcher.alive:
            local.launcher = launcher = _Launcher(python)
            with lock:
                launchers.append(launcher)
        try:
            results[index] = _run(jobs[index], limits, launcher, own_uid, without)
        except Exception as error:  # whatever one sample did, every other sample still gets its result
            launcher.close()
            results[index] = Outcome(
                False, wire.safe_text(f"error: the judge failed on this sample: {error!r}", 500), None, 0.0, "unknown"
            )
        with lock:
            bar.advance()

    shown = description is not None
    try:
        if require and jobs:
            launchers.append(_Launcher(python))
            probe = _run(CodeJob(program="pass\n"), limits, launchers[-1], own_uid, without)
            absent = [p for p in require if p not in probe.isolation.split(",")]
            if absent:
                raise IsolationMissing(
                    f"required sandbox protection(s) not available here: {', '.join(absent)}"
                    f" (achieved: {probe.isolation})"
                )
        counting = progress.task(description or "", total=len(jobs), unit="program", shown=shown)
        with counting as bar, ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda index: work(index, bar), range(len(jobs))))
    finally:
        for launcher in launchers:
            if launcher.alive:
                launcher.close()
    return [result for result in results if result is not None]
