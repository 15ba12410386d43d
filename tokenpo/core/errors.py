"""The one kind of error that means "bad input, not a bug", and the exit code it ends a command with.

Every package raises a subclass that adds where the problem is (a file and line, a record, a
setting); the command line catches :class:`UserError` alone, prints its message as one
``error: …`` line on stderr and exits with :data:`EXIT_CODE`. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

EXIT_CODE = 2


class UserError(Exception):
    """A problem with what the user gave us (a file, a record, a flag, a setting), said in one line."""
