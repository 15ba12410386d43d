"""How a leaderboard reads as text, alike in the markdown table and the HTML report: scores,
intervals and deltas, seeds, method labels and the legend under the table."""

from __future__ import annotations

import math

from tokenpo.leaderboards.board import Leaderboard, Row
from tokenpo.leaderboards.health import MARKER
from tokenpo.leaderboards.intervals import Estimate
from tokenpo.leaderboards.stats import MIN_ITEMS_FOR_INTERVAL

NORMALISATION = "max(0, (v − random) / (1 − random)) · 100"


def fmt_score(estimate: Estimate | None, sd: float | None = None) -> str:
    if estimate is None or math.isnan(estimate.value):
        return "—"
    return f"{estimate.value:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def fmt_delta(estimate: Estimate | None) -> str:
    """``+1.2 [+0.3, +2.1]*`` (``*``: significant), or without an interval ``+1.2 (no interval: WHY)``."""
    if estimate is None:
        return "—"
    if not estimate.has_interval:
        why = fmt_no_interval(estimate)
        return f"{estimate.value:+.1f}" + (f" ({why})" if why else "")
    mark = "*" if estimate.significant else ""
    return f"{estimate.value:+.1f} [{estimate.low:+.1f}, {estimate.high:+.1f}]{mark}"


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


def legend_lines(board: Leaderboard) -> list[str]:
    level = f"{board.confidence * 100:g}%"
    lines = [
        f"Scores are normalised as the Open LLM Leaderboard v2: {NORMALISATION} (clipped at 0); "
        "with several seeds, mean ± sd over seeds.",
        f"Δ is the difference to the `{board.baseline}` row in normalised points with its {level} paired "
        "bootstrap interval over the items both share (`*`: the interval excludes 0); "
        "an interval from reported stderrs is said so in the notes.",
        f"No interval and no `*` where the items cannot support one: fewer than {MIN_ITEMS_FOR_INTERVAL} "
        "items, or no variation across them (every item scored alike; for Δ, every shared item moved "
        "alike); the average has one only if every benchmark in it does. The cell says why instead.",
    ]
    if any(row.flagged for row in board.rows):
        lines.append(
            f"{MARKER} marks a method whose training was flagged (it did not train): listed after the ranked "
            "rows of its model, not ranked; the notes say which run, metric and value."
        )
    lines += [b.note for b in board.benchmarks if b.note]
    return lines
