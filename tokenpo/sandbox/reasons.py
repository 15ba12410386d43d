"""How the launcher's report of one job becomes a verdict: passed, or a one-line reason naming the cause.

The report is plain data from trusted code (the tester and the launcher); the reason quotes what
the program raised or sent only after :func:`tokenpo.sandbox.wire.safe_text` made it writable.
"""

from __future__ import annotations

import os
import signal

from tokenpo.sandbox.jobs import SandboxLimits


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _returncode(status: int | None) -> int | None:
    """The sandbox's exit status as a return code; the sandbox passes on ``128 + N`` for signal N."""
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _exit_reason(returncode: int | None, report: dict, limits: SandboxLimits, stage: str) -> str:
    """Why a program that ended before it should have (``stage``: load or tests) did not pass."""
    # 128 + N: the program was killed by signal N; -N: the sandbox's own process was (the kernel's
    # out-of-memory killer picks any process of the cgroup).
    number = None
    if returncode is not None and returncode > 128:
        number = returncode - 128
    elif returncode is not None and returncode < 0:
        number = -returncode
    if number == signal.SIGXCPU:
        return f"cpu time limit of {limits.cpu_seconds} s"
    if number == signal.SIGXFSZ:
        return f"file size limit of {limits.file_bytes} bytes (output or files)"
    if number == signal.SIGKILL and report.get("memory_limit_hit"):
        return f"memory limit of {limits.memory_bytes} bytes (the sandbox's total)"
    if number is not None:
        return f"killed by signal {_signal_name(number)}"
    when = "before the end of the program" if stage == "load" else "before its tests ended"
    if returncode == 0:
        return f"exited with status 0 {when} (sys.exit or os._exit)"
    return f"exited with status {returncode} {when}"


def _raised_reason(kind: str, message: str, limits: SandboxLimits, exit_code: int | None) -> str:
    text = f"{kind}: {message}" if message else kind
    if kind == "MemoryError":
        return f"memory limit of {limits.memory_bytes} bytes: MemoryError"
    if kind == "BlockingIOError" and "Resource temporarily unavailable" in message:
        return f"process limit of {limits.max_processes}: {text}"
    if "File too large" in message:
        return f"file size limit of {limits.file_bytes} bytes (output or files)"
    if kind == "AssertionError":
        return f"failed: {text}"
    prefix = f"error (exit {exit_code})" if exit_code is not None else "error"
    return f"{prefix}: {text[:300]}"


def classify(report: dict | None, limits: SandboxLimits) -> tuple[bool, str, int | None]:
    """(passed, reason, return code) from the launcher's report of one job."""
    if report is None:
        return False, "error: the sandbox launcher failed", None
    if report.get("timed_out"):
        return False, f"timeout: wall time limit of {limits.wall_seconds:g} s", None
    returncode = _returncode(report.get("status"))
    outcome = report.get("outcome")
    if outcome == "passed":
        return True, "passed", returncode
    if outcome == "gone":
        return False, _exit_reason(returncode, report, limits, report.get("stage", "tests")), returncode
    if outcome == "tester_limit":
        reason = f"the program's answer outgrew the tester's memory limit ({report.get('message', '')})"
        return False, reason, returncode
    if outcome == "forged" and str(report.get("message", "")).startswith("the program's answer cannot cross"):
        return False, report["message"][:300], returncode  # an honest answer over a limit: too deep, too large
    if outcome == "forged":
        return False, f"forged: the program's answer is not plain data ({report.get('message', '')[:200]})", returncode
    if outcome in ("failed", "raised"):
        code = returncode if report.get("stage") == "load" else None
        reason = _raised_reason(report.get("kind", "?"), report.get("message", ""), limits, code)
        if report.get("objects"):  # e.g. an object whose __eq__ is always true: it stayed in the program
            reason += f"; the program answered with objects, not data ({', '.join(report['objects'])})"
        return False, reason, returncode
    return False, "error: the sandbox did not start the program", returncode
