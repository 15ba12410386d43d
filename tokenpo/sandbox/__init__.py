"""Run untrusted programs against their tests, each in a sandbox of its own, the verdict outside it.

One entry point: :func:`run_many` (and :func:`run_program` for one job). The code judges
(``harness judge passk``, lm-eval's HumanEval metric) build :class:`CodeJob` values and call it; how
a program is isolated and judged is described in ``docs/sandbox.md``.
"""

from tokenpo.sandbox.jobs import CodeJob, Outcome, SandboxLimits
from tokenpo.sandbox.launcher import PROTECTIONS
from tokenpo.sandbox.runner import (
    IsolationMissing,
    check_protections,
    run_many,
    run_program,
    sandbox_python,
)

__all__ = [
    "PROTECTIONS",
    "CodeJob",
    "IsolationMissing",
    "Outcome",
    "SandboxLimits",
    "check_protections",
    "run_many",
    "run_program",
    "sandbox_python",
]
