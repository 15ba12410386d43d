"""ROUGE judge: rouge-score's ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures per sample, with a bootstrap CI.

ROUGE-Lsum treats newlines as sentence boundaries (summary-level LCS), as rouge-score defines it:
give multi-sentence texts one sentence per line. Porter stemming is on by default, as in the
summarisation literature (and 🤗 evaluate's ``rouge``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.passk import mean_and_stderr

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass(frozen=True)
class Interval:
    mean: float
    stderr: float
    low: float
    high: float


def score_pairs(predictions: Sequence[str], references: Sequence[str], stemming: bool = True) -> list[dict[str, float]]:
    """``[{rouge1, rouge2, rougeL, rougeLsum}]``: the F-measure of each prediction against its reference."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise EvalError(
            "--predictions/--references", "count", f"{len(predictions)} predictions but {len(references)} references"
        )
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=stemming)
    return [
        {name: score.fmeasure for name, score in scorer.score(reference, prediction).items()}
        for prediction, reference in zip(predictions, references, strict=True)
    ]


def bootstrap(values: Sequence[float], resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean, its standard error, and the percentile bootstrap interval of the mean."""
    if not values:
        raise EvalError("rouge", "samples", "no samples to score")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(tail * (resamples - 1))]
    high = means[round((1 - tail) * (resamples - 1))]
    mean, stderr = mean_and_stderr(values)
    return Interval(mean, stderr, low, high)
