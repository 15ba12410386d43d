"""The shared core: facts and plumbing that every room (trainers, evals, leaderboards, harness) uses alike.

It imports nothing from the rooms, so any of them may import it.
"""
