"""ROUGE judge: rouge-score's ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures per sample, with a bootstrap CI.

ROUGE-Lsum treats newlines as sentence boundaries (summary-level LCS), as rouge-score defines it:
give multi-sentence texts one sentence per line. Porter stemming is on by default, as in the
summarisation literature (and 🤗 evaluate's ``rouge``). The interval of each mean F-measure is the
shared percentile bootstrap of :func:`tokenpo.core.stats.bootstrap_mean`, the leaderboard's resampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tokenpo.core.stats import Interval, bootstrap_mean
from tokenpo.evals.errors import EvalError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


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


def score_intervals(
    scores: Sequence[Mapping[str, float]], resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Interval]:
    """Per ROUGE type: the mean F-measure of ``scores`` (``score_pairs``), its standard error and the
    percentile interval of ``resamples`` bootstrap resamples of the pairs (every type draws the same pairs)."""
    if not scores:
        raise EvalError("rouge", "samples", "no samples to score")
    return {name: bootstrap_mean([s[name] for s in scores], resamples, confidence, seed) for name in ROUGE_TYPES}
