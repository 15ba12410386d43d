"""Sub-commands of ``harness``; each module adds its parser and sets ``run``."""

from harness.commands import data, evaluation, judge, models

COMMANDS = (models, data, evaluation, judge)
