"""Training health: is the method learning at all? Checked on the metrics rows while a run goes.

A run that does not learn must never be ranked as if it had: its masks are zero almost
everywhere (the reward term vanishes), its token multipliers are so small that the effective β
(β × the mean mask or weight on completion tokens) is a small fraction of β, or its margins stay
flat. Each check reads the mean of a logged metric over the last :data:`WINDOW` steps:

- ``mask/{u,d}_zero_fraction`` ≥ :data:`ZERO_MASK`: the masks are zero on nearly every token;
- ``mask/{u,d}_{chosen,rejected}_mean`` or ``weights/{chosen,rejected}_mean`` (their average) below
  :data:`SMALL_MULTIPLIER`: the effective β is below a tenth of β;
- ``rewards/margins`` grew by less than :data:`FLAT_MARGIN` from the first window to the last
  while ``rewards/accuracies`` stays below :data:`LEARNED_ACCURACY` — checked at the last step
  only: warm-up, and pairs seen for the first time in the first epoch, keep healthy runs flat for a
  while (measured on the quickstart: every method's margins were flat at its halfway step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

WINDOW = 5
ZERO_MASK = 0.99
SMALL_MULTIPLIER = 0.1
FLAT_MARGIN = 0.01
LEARNED_ACCURACY = 0.6


@dataclass(frozen=True)
class HealthFlag:
    """One sign that a run is not learning: the metric, its value over the last steps, and why."""

    metric: str
    value: float
    problem: str

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self, run: str) -> str:
        return f"warning: {run}: {self.metric} {self.value:.4g}: {self.problem}"


def _mean(rows: Sequence[Mapping[str, float]], key: str) -> float | None:
    values = [row[key] for row in rows if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
    return sum(values) / len(values) if values else None


def check(rows: Sequence[Mapping[str, float]], beta: float, total_steps: int) -> list[HealthFlag]:
    """The flags the metrics rows so far raise (empty: healthy, or too early to tell)."""
    if len(rows) < WINDOW:
        return []
    last = rows[-WINDOW:]
    flags: list[HealthFlag] = []
    for kind in ("u", "d"):
        zero = _mean(last, f"mask/{kind}_zero_fraction")
        if zero is not None and zero >= ZERO_MASK:
            flags.append(HealthFlag(
                f"mask/{kind}_zero_fraction", zero,
                f"the masks are zero on {zero:.1%} of completion tokens over the last {WINDOW} steps: "
                "the masked terms vanish",
            ))
    for prefix in ("mask/u_", "mask/d_", "weights/"):
        chosen, rejected = _mean(last, f"{prefix}chosen_mean"), _mean(last, f"{prefix}rejected_mean")
        if chosen is None or rejected is None:
            continue
        multiplier = (chosen + rejected) / 2
        if multiplier < SMALL_MULTIPLIER:
            flags.append(HealthFlag(
                f"{prefix}chosen_mean", chosen,
                f"mean token multiplier {multiplier:.3g} on completion tokens: effective β = "
                f"{beta * multiplier:.3g}, under a tenth of β = {beta:g}",
            ))
    if len(rows) >= max(2 * WINDOW, total_steps):
        first, end = _mean(rows[:WINDOW], "rewards/margins"), _mean(last, "rewards/margins")
        accuracy = _mean(last, "rewards/accuracies")
        known = first is not None and end is not None and accuracy is not None
        if known and end - first < FLAT_MARGIN and accuracy < LEARNED_ACCURACY:
            flags.append(HealthFlag(
                "rewards/margins", end,
                f"margins stayed flat ({first:.4g} over the first {WINDOW} steps, {end:.4g} over the "
                f"last {WINDOW}; reward accuracy {accuracy:.2f})",
            ))
    return flags


class HealthMonitor:
    """Checks after every step and reports each flagged metric once, as it first appears."""

    def __init__(self, beta: float, total_steps: int):
        self.beta, self.total_steps = beta, total_steps
        self.rows: list[Mapping[str, float]] = []
        self.reported: set[str] = set()

    def update(self, row: Mapping[str, float]) -> list[HealthFlag]:
        """Add a step's metrics; return the flags raised for the first time."""
        self.rows.append(row)
        new = [flag for flag in check(self.rows, self.beta, self.total_steps) if flag.metric not in self.reported]
        self.reported.update(flag.metric for flag in new)
        return new

    def final(self) -> list[HealthFlag]:
        return check(self.rows, self.beta, self.total_steps)
