"""Evaluation: lm-evaluation-harness benchmarks (online and offline) and task judges.

from evals import evaluate
run = evaluate(model_or_path, tokenizer, suite="paper", data_dir=prepared, output_dir="out/")
"""

from evals.api import EvalRun, evaluate
from evals.errors import EvalError

__all__ = ["EvalError", "EvalRun", "evaluate"]
