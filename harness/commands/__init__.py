"""Sub-commands of ``harness``; each module adds its parser and sets ``run``."""

from harness.commands import data, models, train

COMMANDS = (models, data, train)
