"""Leaderboards against the DPO baseline, with confidence intervals, and a regression gate."""
