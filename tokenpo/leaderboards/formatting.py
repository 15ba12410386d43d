"""How a leaderboard reads as text, alike in the markdown table, the HTML report and model cards:
scores, intervals and deltas, what an interval covers, verdicts, seeds, method labels and the legend
under the table."""

from __future__ import annotations

import math

from tokenpo.leaderboards.board import Leaderboard, Row
from tokenpo.leaderboards.health import MARKER
from tokenpo.leaderboards.intervals import MIN_SEEDS_FOR_CLAIM, Estimate
from tokenpo.leaderboards.matched import MatchedKL
from tokenpo.leaderboards.stat_rules import MIN_ITEMS_FOR_INTERVAL
from tokenpo.leaderboards.verdicts import BETTER, EQUIVALENT, WORSE, Verdict

NORMALISATION = "max(0, (v − random) / (1 − random)) · 100"


def fmt_score(estimate: Estimate | None, sd: float | None = None) -> str:
    if estimate is None or math.isnan(estimate.value):
        return "—"
    return f"{estimate.value:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def fmt_delta(estimate: Estimate | None, digits: int = 1) -> str:
    """``+1.2 [+0.3, +2.1]*`` (``*``: significant), ``+1.2 [+0.3, +2.1] (1 seed)`` (an interval of
    evaluation noise only: no claim), or without an interval ``+1.2 (no interval: WHY)``."""
    if estimate is None:
        return "—"
    if not estimate.has_interval:
        why = fmt_no_interval(estimate)
        return f"{estimate.value:+.{digits}f}" + (f" ({why})" if why else "")
    mark = "*" if estimate.significant else ""
    blocked = f" ({estimate.seeds} seed)" if estimate.claim_blocked and estimate.seeds is not None else ""
    return f"{estimate.value:+.{digits}f} [{estimate.low:+.{digits}f}, {estimate.high:+.{digits}f}]{mark}{blocked}"


def fmt_claim(found: Verdict) -> str:
    """The verdict word when it makes a claim (better, worse, equivalent), else nothing."""
    return found.word if found.word in (BETTER, WORSE, EQUIVALENT) else ""


def fmt_delta_verdict(estimate: Estimate | None, found: Verdict) -> str:
    """``fmt_delta`` followed by the verdict word when the Δ supports a claim."""
    claim = fmt_claim(found)
    return fmt_delta(estimate) + (f" {claim}" if claim else "")


def fmt_interval(estimate: Estimate | None) -> str:
    """``[low, high]``, or why there is no interval (``—`` when nothing says why)."""
    if estimate is None:
        return "—"
    if not estimate.has_interval:
        return fmt_no_interval(estimate) or "—"
    return f"[{estimate.low:.1f}, {estimate.high:.1f}]"


def fmt_no_interval(estimate: Estimate) -> str:
    """``no interval: WHY`` for an estimate whose items cannot support one; empty if it has one."""
    return f"no interval: {estimate.no_interval}" if estimate.no_interval else ""


def seeds_text(row: Row) -> str:
    seeds = [s for s in row.seeds if s is not None]
    return ",".join(map(str, seeds)) if seeds else "—"


def method_label(row: Row) -> str:
    """The method, with the marker ``⚠ `` before it when its training was flagged."""
    return f"{MARKER} {row.method}" if row.flagged else row.method


def verdict_rows(board: Leaderboard) -> list[list[str]]:
    """The matched-KL verdicts as table rows (see ``VERDICT_HEAD``)."""
    return [
        [
            v.method,
            v.model,
            v.task,
            f"{v.kl:.3f}",
            f"{v.path_kl[0]:.3f}–{v.path_kl[1]:.3f}",
            "—" if not math.isfinite(v.reward) else f"{v.reward:.3f}",
            f"{v.baseline_reward:.3f}",
            fmt_delta(v.delta, digits=3) if math.isfinite(v.delta.value) else "—",  # the verdict says why
            v.delta.covers,
            _seed_list(v.seeds),
            v.verdict.text,
        ]
        for v in board.verdicts
    ]


VERDICT_HEAD = [
    "method",
    "model",
    "judge",
    "KL (baseline's final)",
    "method's path KL",
    "reward there",
    "baseline's reward",
    "Δ",
    "interval covers",
    "seeds",
    "verdict",
]


def verdict_intro(board: Leaderboard) -> str:
    level = f"{board.confidence * 100:g}%"
    return (
        f"Each method's reward (positive rate) at `{board.baseline}`'s final KL to the reference, read along its "
        "own path of evaluated checkpoints (the seeds' mean; linear in √KL between checkpoints, never "
        f"extrapolated), minus `{board.baseline}`'s final reward, with its {level} two-level bootstrap interval; "
        f"equivalence margin ±{board.margin:g}."
    )


def _seed_list(seeds) -> str:
    known = [s for s in seeds if s is not None]
    return ",".join(map(str, known)) if known else "—"


def matched_for(board: Leaderboard, row: Row) -> MatchedKL | None:
    return next((v for v in board.verdicts if v.method == row.method and v.model == row.model), None)


def legend_lines(board: Leaderboard) -> list[str]:
    level = f"{board.confidence * 100:g}%"
    lines = [
        f"Scores are normalised as the Open LLM Leaderboard v2: {NORMALISATION} (clipped at 0); "
        "with several seeds, mean ± sd over seeds.",
        f"Intervals are {level} percentile intervals of a two-level bootstrap: a row's training seeds are drawn "
        "with replacement, then its prompts (every sample of a prompt together); Δ to "
        f"`{board.baseline}` draws the shared prompts once for both rows, and the seeds once for both when "
        "they share them (paired by seed and prompt). The interval's 'covers' says what it resampled: "
        "training seeds and prompts, or prompts only (one seed: evaluation noise).",
        f"`*` (and the words better / worse) only where the interval excludes 0 and every trained row has at "
        f"least {MIN_SEEDS_FOR_CLAIM} training seeds; `(1 seed)` marks a Δ whose interval covers evaluation "
        "noise only: it says how that one trained model compares, not the method (verdict: inconclusive). "
        f"equivalent: the interval lies inside ±{board.margin:g} of the headline metric (±{board.margin * 100:g} "
        "points where random is 0).",
        f"No interval and no `*` where the data cannot support one: fewer than {MIN_ITEMS_FOR_INTERVAL} "
        "prompts, or no variation across them (every prompt scored alike; for Δ, every shared prompt moved "
        "alike); the average has one only if every benchmark in it does. The cell says why instead.",
    ]
    if any(row.flagged for row in board.rows):
        lines.append(
            f"{MARKER} marks a method whose training was flagged (a health check found it did not train, or trained "
            "otherwise than its method claims, or its seeds disagree): listed "
            "after the ranked rows of its model, not ranked, its verdicts inconclusive; the notes say which run, "
            "check and value."
        )
    lines += [b.note for b in board.benchmarks if b.note]
    return lines


def smoke_lines(board: Leaderboard) -> list[str]:
    """One line per benchmark run as a smoke check (too few items to compare)."""
    return [
        f"{check.benchmark.label}: {check.items} item{'s' if check.items != 1 else ''} per task, run as a smoke "
        "check, not compared (raw " + ", ".join(f"{label} {raw:.4f}" for label, raw in check.raw.items()) + ")"
        for check in board.smoke
    ]
