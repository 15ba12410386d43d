"""Errors the command line reports as one line on stderr with exit code 2 (bad input, not a bug)."""

from tokenpo.core.errors import UserError


class HarnessError(UserError):
    """A problem with what the user gave us: a spec, a flag, a file. Never a bug in our code."""
