"""Sub-commands of ``harness``; each module adds its parser and sets ``run``."""

from harness.commands import data, leaderboard, models, regress

COMMANDS = (models, data, leaderboard, regress)
