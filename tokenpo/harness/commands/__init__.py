"""Sub-commands of ``harness``; each module adds its parser and sets ``run``."""

from tokenpo.harness.commands import card, data, evaluation, judge, leaderboard, models, regress, run, train, vllm

COMMANDS = (models, data, train, evaluation, judge, leaderboard, regress, run, card, vllm)
