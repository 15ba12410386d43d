"""Token-level preference optimisation harness: train, evaluate, compare against DPO."""

__version__ = "0.1.0"
