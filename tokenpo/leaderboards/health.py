"""Training health: the flags a training run raised (a method that did not train is never ranked silently).

A flag is ``{"metric": "rewards/margins", "value": 0.0008, "problem": "margins stayed flat …"}``.
Results carry them in ``harness.training_health`` and run folders in ``health.json``
(``{"flags": [...], "checks": [...], "steps": N, ...}``): an empty list means the run was checked
and is healthy, a missing key means its health is unknown (older or plain lm-eval results).

One check looks across the seeds of a method (the others are each run's: ``tokenpo.trainers.health``):
``seed_disagreement``, when the seeds' effective β (β × the mean token multiplier each trained with,
``harness.effective_beta``) differ by more than ``SEED_DISAGREEMENT`` (3×). Learned SparsePO masks
start from a random head whose sparsity decides the multiplier (mean masks of 0.2–7.2 over 20
initialisations on IMDB): seeds 3× apart in effective β are different methods that share a name, and
their mean is no result of the method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from tokenpo.leaderboards.errors import ResultsError

OK, FLAGGED, UNKNOWN = "ok", "flagged", "unknown"
MARKER = "⚠"
SEED_DISAGREEMENT = 3.0


def seed_disagreement(effective_betas: Mapping[int | None, float | None]) -> list[dict]:
    """``[flag]`` when the seeds' effective β differ by more than ``SEED_DISAGREEMENT``×, else ``[]``."""
    known = {seed: beta for seed, beta in effective_betas.items() if beta is not None and beta > 0}
    if len(known) < 2:
        return []
    low, high = min(known, key=known.get), max(known, key=known.get)
    ratio = known[high] / known[low]
    if ratio <= SEED_DISAGREEMENT:
        return []
    return [
        {
            "metric": "effective_beta",
            "value": ratio,
            "problem": (
                f"seed_disagreement: the seeds' effective β differ {ratio:.1f}× (seed {high}: {known[high]:.3g}, "
                f"seed {low}: {known[low]:.3g}; bound {SEED_DISAGREEMENT:g}×): the method's behaviour is set "
                "by each seed's random start"
            ),
        }
    ]


def parse_flags(raw: object, where: str) -> list[dict] | None:
    """Validated flags ``[{"metric": str | None, "value": float | None, "problem": str}]``; None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ResultsError(f"{where}: expected a list of flags, got {type(raw).__name__}")
    flags = []
    for i, flag in enumerate(raw):
        if not isinstance(flag, Mapping):
            raise ResultsError(f"{where}[{i}]: expected an object with metric, value and problem")
        metric, value, problem = flag.get("metric"), flag.get("value"), flag.get("problem")
        if not isinstance(problem, str) or not problem.strip():
            raise ResultsError(f"{where}[{i}].problem: missing or not a string")
        if metric is not None and not isinstance(metric, str):
            raise ResultsError(f"{where}[{i}].metric: expected a string, got {metric!r}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ResultsError(f"{where}[{i}].value: expected a number, got {value!r}")
        flags.append({"metric": metric, "value": None if value is None else float(value), "problem": problem})
    return flags


def status(flag_lists: Iterable[list[dict] | None]) -> str:
    """``flagged`` when any run has a flag, ``ok`` when every run was checked and has none, else ``unknown``."""
    lists = list(flag_lists)
    if any(flags for flags in lists):
        return FLAGGED
    if lists and all(flags is not None for flags in lists):
        return OK
    return UNKNOWN


def describe(flag: Mapping) -> str:
    """``rewards/margins = 0.0008: margins stayed flat (…)`` (metric and value when known)."""
    metric, value, problem = flag.get("metric"), flag.get("value"), flag["problem"]
    if metric and value is not None:
        return f"{metric} = {value:.4g}: {problem}"
    return f"{metric}: {problem}" if metric else problem


def json_value(value: float | None) -> float | None:
    """A flag's value for JSON output: non-finite values (a NaN loss) become null, the problem says it."""
    return value if value is not None and math.isfinite(value) else None


def flag_record(flag: Mapping, **context) -> dict:
    """A flag as a JSON object, after ``context`` (e.g. ``seed=0``: which run raised it)."""
    return context | {"metric": flag.get("metric"), "value": json_value(flag.get("value")), "problem": flag["problem"]}
