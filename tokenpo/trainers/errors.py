"""Errors a training run reports as one line (exit code 2 on the command line), not as a traceback."""

from tokenpo.core.errors import UserError


class TrainingError(UserError, RuntimeError):
    """A run that cannot start or go on: a non-finite loss or gradient (naming the step), an output
    folder holding a different run, too little data for one batch."""
