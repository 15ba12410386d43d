"""Evaluation: lm-evaluation-harness benchmarks (online and offline) and task judges."""
