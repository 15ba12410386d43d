"""The error evals raise for bad input (a malformed record, a missing file, a bad setting).

The command line prints it as one ``error: …`` line and exits 2; anything else is a bug.
"""

from __future__ import annotations

from tokenpo.core.errors import UserError


class EvalError(UserError, ValueError):
    """``WHERE: field: what is wrong`` (``WHERE: what is wrong`` when ``field`` is empty: the whole of
    WHERE), WHERE being ``FILE``, ``FILE:LINE`` or a setting's name."""

    def __init__(self, where: str, field: str, problem: str):
        self.where, self.field, self.problem = where, field, problem
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")
