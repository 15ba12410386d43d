"""The shared core: facts and plumbing that every other package of tokenpo uses alike.

It imports nothing from the other packages, so any of them may import it.
"""
