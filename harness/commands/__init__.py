"""Sub-commands of ``harness``; each module adds its parser and sets ``run``."""

from harness.commands import data, eval, judge, models

COMMANDS = (models, data, eval, judge)
