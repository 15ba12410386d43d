"""Evaluation: lm-evaluation-harness benchmarks (online and offline) and task judges.

from tokenpo.evals import evaluate
run = evaluate(model_or_path, tokenizer, suite="paper", data_dir=prepared, output_dir="out/")
"""

from tokenpo.evals.api import EvalRun, evaluate
from tokenpo.evals.errors import EvalError

__all__ = ["EvalError", "EvalRun", "evaluate"]
