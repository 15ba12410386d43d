"""Verdicts: what a Δ to the baseline lets one say about a method, in one of four words.

- **better** / **worse**: the interval of Δ excludes 0 (on the side the word says);
- **equivalent**: the interval lies inside ±margin, a margin declared before looking (two one-sided
  tests at (1 − confidence)/2 each: with 95% intervals, TOST at 2.5%);
- **inconclusive**: anything else, with the reason when there is one: one training seed (a claim
  about a method needs its training seeds in the interval, ``intervals.MIN_SEEDS_FOR_CLAIM``), no
  interval (too few prompts, a matched point outside a path), a row whose training was flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenpo.leaderboards.intervals import Estimate

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
# The declared equivalence margin, in the headline metric's own units (0.05: five points of positive
# rate, of accuracy). Why 0.05: the sentiment experiments' effects of interest (the papers' frontier gaps)
# are 0.05–0.2 of positive rate; a smaller margin needs more prompts than a CPU run evaluates to ever
# call two methods equivalent. Configurable (report.equivalence_margin, harness leaderboard --margin).
DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class Verdict:
    word: str  # BETTER, WORSE, EQUIVALENT or INCONCLUSIVE
    reason: str | None = None

    @property
    def text(self) -> str:
        """``better``, ``inconclusive (1 training seed)``."""
        return f"{self.word} ({self.reason})" if self.reason else self.word


def verdict(estimate: Estimate | None, margin: float | None, flagged: str | None = None) -> Verdict:
    """The verdict of a Δ (positive: better) under the equivalence ``margin`` (None: never equivalent).

    ``flagged`` names a training-health problem of either row: the comparison is then inconclusive
    whatever its interval (a method that did not train, or whose behaviour is its random start, is
    not ranked).
    """
    if estimate is None:
        return Verdict(INCONCLUSIVE, "no comparison")
    reasons = [
        reason
        for reason in (
            estimate.claim_blocked,
            None if estimate.has_interval else f"no interval: {estimate.no_interval}",
            f"training flagged: {flagged}" if flagged else None,
        )
        if reason
    ]
    if reasons:  # every reason that stands in the way, the one a reader can act on first
        return Verdict(INCONCLUSIVE, "; ".join(reasons))
    if estimate.low > 0:
        return Verdict(BETTER)
    if estimate.high < 0:
        return Verdict(WORSE)
    if margin is not None and -margin < estimate.low and estimate.high < margin:
        return Verdict(EQUIVALENT)
    return Verdict(INCONCLUSIVE)
