"""The shared core: facts that every room (trainers, evals, leaderboards, harness) reads the same way.

It imports nothing from the rooms, so any of them may import it.
"""
