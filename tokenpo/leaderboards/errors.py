"""Errors about result, run and benchmarks files (bad input, not a bug).

``harness`` prints them as one line naming the file, line and field, and exits 2.
"""

from tokenpo.core.errors import UserError


class ResultsError(UserError):
    """A result, run or benchmarks file is missing, malformed or inconsistent."""
