"""Training health: did the method learn, and did it learn at the strength it claims? Checked on the
metrics rows while a run goes, and once more at its end.

A run must never be ranked as if it had trained the way its name says when it did not. The checks
look both ways: a run that does not learn (zero masks, a vanishing multiplier, flat margins) and one
that learns something else than the method promises (a β several times the nominal one, one token
carrying a completion, a mask head that never moves, a policy that drifts while the loss gives no
signal, anchors most pairs never had). Each check reads the mean of logged metrics over a window of
:data:`WINDOW` steps. The *multiplier* is the mean token mask or weight on completion tokens: the
average of ``mask/u_chosen_mean`` and ``mask/u_rejected_mean`` (SparsePO's reward mask m_u) or of
``weights/chosen_mean`` and ``weights/rejected_mean`` (TI-DPO); β × the multiplier is the
*effective β* (DPO and TDPO: β itself).

Judged on the last window, from step :data:`WINDOW` on:

- ``zero_masks``: ``mask/{u,d}_zero_fraction`` ≥ :data:`ZERO_MASK` (0.99): the masks are zero on
  nearly every token, so the masked terms vanish.
- ``small_multiplier``: the multiplier (of m_u, m_d or TI-DPO's weights) below
  :data:`SMALL_MULTIPLIER` (0.1): the effective β is under a tenth of β.
- ``inflated_beta``: the multiplier of the reward term (m_u or the weights) above
  :data:`INFLATED_MULTIPLIER` (3): the method trains at more than 3× its nominal β, so it is not
  compared with DPO at the same β. Measured on the project's IMDB sentiment experiment: learned
  heads with mean masks of 5–7 trained at 5–7× β while this module said "ok". m_d is left out: it
  scales the KL penalty, and a large one makes a run more conservative, not stronger.
- ``concentrated_weights``: ``mask/{u,d}_top_share`` or ``weights/top_share`` (per completion the
  largest token's share of its total weight, max_t w_t / Σ_t w_t, averaged over completions with
  any weight) above :data:`CONCENTRATED_SHARE` (0.25): one token holds more than a quarter of a
  completion's weight, so the "token-level" method mostly trains on that token. Measured: TI-DPO's
  attribution put ≈ 35 % of all completion weight on an appended ``<|im_end|>`` (≈ 9.7 against 0.73
  for content tokens), a token evaluation never sees. At uniform weights a completion of T tokens has
  share 1/T, so completions of 4 tokens or fewer would reach 0.25 without any concentration: the
  statistic reads completions of at least ``methods.TOP_SHARE_MIN_TOKENS`` (8) tokens only, whose
  uniform share is at most half the bound (no such completion: not judged).

Judged at the end only (once there are ≥ max(2 × :data:`WINDOW`, total steps) rows, so the first and
the last window do not overlap), comparing the first window with the last:

- ``flat_margins``: ``rewards/margins`` grew by less than :data:`FLAT_MARGIN` (0.01) while
  ``rewards/accuracies`` stays below :data:`LEARNED_ACCURACY` (0.6). Not judged mid-run: warm-up,
  and pairs seen for the first time in the first epoch, keep healthy runs flat for a while
  (measured on the quickstart: every method's margins were flat at its halfway step).
- ``static_masks`` (SparsePO with a learned head): the zero fraction moved by less than
  :data:`STATIC_ZERO_FRACTION` (0.02, absolute) AND the mean mask by at most :data:`STATIC_MEAN`
  (5 %, relative): the head's sparsity is whatever its random start was. Measured: re-initialising
  the head gives 6–92 % zeros depending on the seed; at step 1 every r_t and KL_t is 0, so the head
  gets no gradient (it is proportional to r_t + KL_t), zeroed tokens pass none (ReLU), and with
  λ = 0 nothing rewards sparsity; the IMDB experiment went from 79 % to 80 % zeros (Δ 0.01, inside
  the tolerance), and with the head at the policy's learning rate the masks stayed at their
  initial mean 0.23 for 24 steps. The tolerances are a judgement, not a measurement: a head that
  learns moves far more (the quickstart's head at lr 2e-3 went from mean 0.23 to 0.0004 in 16
  steps), while two windows of different batches differ by a little even for a frozen head (the
  masks are a function of the sequences). With λ > 0 the check still applies: the L1 term does
  push the head towards zero, so a head that still did not move learned nothing from either term;
  the record's detail says λ > 0. Activation masks are constants of the frozen reference: n/a.
- ``kl_drift``: the KL to the reference on the training pairs (the mean of ``kl/chosen`` and
  ``kl/rejected``, each Σ_t KL_t per completion) grew by more than :data:`KL_DRIFT` (0.5 nats) while
  the margins moved by less than :data:`KL_FLAT_MARGIN` (0.1) either way: the policy moves away from
  the reference but not towards separating the pairs. Measured: with masks collapsed to zero the
  loss gives no signal, yet the token KL rose to 2–3 nats. 0.5 nats is far above numerical noise
  (the KL is exactly 0 at step 1, when the policy is the reference) and well below that failure;
  a margin change of 0.1 is, at β = 0.1, a change of 1 nat in the summed log-ratio gap, so a
  policy that moved 0.5 nats for less than that did not spend the move on the pairs. n/a where no
  KL is logged (DPO, TI-DPO's ``weighted-dpo`` variant).
- ``anchor_coverage`` (TI-DPO with γ > 0): the share of training pairs that ever had an anchor is
  below :data:`FULL_COVERAGE` (all of them): the others trained without the triplet term, i.e. as
  weighted DPO. Measured: ``anchor_every: 8`` gave only 13–15 of 63 pairs an anchor over 30 steps.
  Counted from the method's anchor pool at the end of training (a resumed run restores it).

A check that does not apply to the method, or cannot be judged yet, is recorded with outcome "n/a"
and its reason in ``detail``; every check is recorded, passing or not (``RUN/health.json``).

Why one module: each check is a short function beside its threshold, and this
docstring is the reference that lists them with the measurements behind each bound; apart, a reader
would check thresholds against a list kept in another file.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from tokenpo.trainers.config import MethodConfig, SparsePOConfig, TIDPOConfig

Rows = Sequence[Mapping[str, float]]
Outcome = Literal["pass", "flag", "n/a"]
MethodName = Literal["dpo", "tdpo", "sparsepo", "tidpo"]

WINDOW = 5
ZERO_MASK = 0.99
SMALL_MULTIPLIER = 0.1
FLAT_MARGIN = 0.01
LEARNED_ACCURACY = 0.6
INFLATED_MULTIPLIER = 3.0
CONCENTRATED_SHARE = 0.25
STATIC_ZERO_FRACTION = 0.02
STATIC_MEAN = 0.05
KL_DRIFT = 0.5
KL_FLAT_MARGIN = 0.1
FULL_COVERAGE = 1.0

_NAMES = {"dpo": "DPO", "tdpo": "TDPO", "sparsepo": "SparsePO", "tidpo": "TI-DPO"}


@dataclass(frozen=True)
class HealthContext:
    """What the checks need to know of the run: the method and the settings that decide which apply.

    ``method``: the method config's ``name`` (dpo, tdpo, sparsepo, tidpo); ``learned_masks``: SparsePO
    with a learned head; ``lambdas_zero``: λ_u = λ_d = 0; ``anchors``: TI-DPO with γ > 0; ``pairs``:
    the training pairs.
    """

    method: MethodName
    beta: float
    total_steps: int
    learned_masks: bool = False
    lambdas_zero: bool = True
    anchors: bool = False
    pairs: int = 0

    @classmethod
    def of(cls, config: MethodConfig, total_steps: int, pairs: int) -> HealthContext:
        learned = isinstance(config, SparsePOConfig) and config.mask == "learned"
        return cls(
            method=config.name,
            beta=config.beta,
            total_steps=total_steps,
            learned_masks=learned,
            lambdas_zero=not learned or config.lambda_u == config.lambda_d == 0,
            anchors=isinstance(config, TIDPOConfig) and config.uses_anchors,
            pairs=pairs,
        )

    @property
    def display(self) -> str:
        return _NAMES.get(self.method, self.method)


@dataclass(frozen=True)
class HealthFlag:
    """One sign that a run is not learning as it should: the metric, its value over the last steps,
    and why."""

    metric: str
    value: float
    problem: str

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self, run: str) -> str:
        return f"warning: {run}: {self.metric} {self.value:.4g}: {self.problem}"


@dataclass(frozen=True)
class HealthCheck:
    """One check's record: what it read (``metric``, ``value``), its ``threshold`` and ``outcome``
    ("pass", "flag", or "n/a" with the reason in ``detail``; value None then)."""

    name: str
    metric: str
    value: float | None
    threshold: float | None
    outcome: Outcome
    detail: str

    @property
    def flag(self) -> HealthFlag | None:
        if self.outcome != "flag" or self.value is None:
            return None
        return HealthFlag(self.metric, self.value, self.detail)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HealthReport:
    """What ``RUN/health.json`` holds: every check, the flagged ones, the effective β, the anchor
    coverage and the steps checked."""

    checks: tuple[HealthCheck, ...] = ()
    flags: tuple[HealthFlag, ...] = ()
    effective_beta: float | None = None
    anchor_coverage: float | None = None
    steps: int | None = None

    def as_dict(self) -> dict:
        return {
            "flags": [flag.as_dict() for flag in self.flags],
            "checks": [record.as_dict() for record in self.checks],
            "effective_beta": self.effective_beta,
            "anchor_coverage": self.anchor_coverage,
            "steps": self.steps,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> HealthReport:
        """A ``health.json``; one written before the checks were recorded has flags and steps only
        (its checks empty, its effective β and anchor coverage None)."""
        return cls(
            tuple(HealthCheck(**record) for record in data.get("checks", ())),
            tuple(HealthFlag(**flag) for flag in data.get("flags", ())),
            data.get("effective_beta"),
            data.get("anchor_coverage"),
            data.get("steps"),
        )


def flagged(checks: Sequence[HealthCheck]) -> tuple[HealthFlag, ...]:
    return tuple(record.flag for record in checks if record.flag is not None)


# ---------------------------------------------------------------- reading the rows


def _mean(rows: Rows, key: str) -> float | None:
    values = [row[key] for row in rows if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
    return sum(values) / len(values) if values else None


def _pair_mean(rows: Rows, prefix: str) -> float | None:
    """The multiplier: the average of ``{prefix}chosen_mean`` and ``{prefix}rejected_mean``."""
    chosen, rejected = _mean(rows, f"{prefix}chosen_mean"), _mean(rows, f"{prefix}rejected_mean")
    return None if chosen is None or rejected is None else (chosen + rejected) / 2


def _mask_kinds(rows: Rows) -> tuple[str, ...]:
    """SparsePO's logged masks: m_u only for a common mask, m_u and m_d for independent heads."""
    return ("u", "d") if any("mask/d_zero_fraction" in row for row in rows[-WINDOW:]) else ("u",)


def _multiplier_prefixes(rows: Rows, context: HealthContext, reward_only: bool = False) -> tuple[str, ...]:
    if context.method == "sparsepo":
        kinds = ("u",) if reward_only else _mask_kinds(rows)
        return tuple(f"mask/{kind}_" for kind in kinds)
    return ("weights/",) if context.method == "tidpo" else ()


def _window_pending(rows: Rows) -> str | None:
    """Why a check on the last window cannot be judged yet (None: it can)."""
    if len(rows) < WINDOW:
        return f"judged from step {WINDOW} on (a window of {WINDOW} steps); {len(rows)} so far"
    return None


def _end_pending(rows: Rows, context: HealthContext) -> str | None:
    """Why a first-window-against-last-window check cannot be judged (None: it can). Judged at the last
    step only, and only when the two windows do not overlap."""
    needed = max(2 * WINDOW, context.total_steps)
    if len(rows) >= needed:
        return None
    if len(rows) >= context.total_steps:
        return f"the run has {len(rows)} steps: too few to compare its first {WINDOW} with its last {WINDOW}"
    return f"judged at the last step (first {WINDOW} steps against the last {WINDOW}); {len(rows)} so far"


def _na(name: str, metric: str, threshold: float | None, detail: str) -> HealthCheck:
    return HealthCheck(name, metric, None, threshold, "n/a", detail)


def _judged(name: str, metric: str, value: float, threshold: float, flag: bool, detail: str) -> HealthCheck:
    return HealthCheck(name, metric, value, threshold, "flag" if flag else "pass", detail)


# ---------------------------------------------------------------- the checks, one function each


def zero_masks(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    if context.method != "sparsepo":
        return [_na("zero_masks", "mask/u_zero_fraction", ZERO_MASK, f"{context.display} has no token masks")]
    records = []
    for kind in _mask_kinds(rows):
        metric = f"mask/{kind}_zero_fraction"
        zero = _mean(rows[-WINDOW:], metric)
        if (pending := _window_pending(rows)) or zero is None:
            records.append(_na("zero_masks", metric, ZERO_MASK, pending or f"{metric} is not logged"))
            continue
        detail = (
            f"the masks are zero on {zero:.1%} of completion tokens over the last {WINDOW} steps: "
            "the masked terms vanish"
            if zero >= ZERO_MASK
            else f"the masks are zero on {zero:.1%} of completion tokens (flagged from {ZERO_MASK:.0%})"
        )
        records.append(_judged("zero_masks", metric, zero, ZERO_MASK, zero >= ZERO_MASK, detail))
    return records


def small_multiplier(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    prefixes = _multiplier_prefixes(rows, context)
    if not prefixes:
        return [
            _na(
                "small_multiplier",
                "mask/u_chosen_mean",
                SMALL_MULTIPLIER,
                f"{context.display} has no token masks or weights",
            )
        ]
    records = []
    for prefix in prefixes:
        metric = f"{prefix}chosen_mean"
        multiplier = _pair_mean(rows[-WINDOW:], prefix)
        if (pending := _window_pending(rows)) or multiplier is None:
            records.append(_na("small_multiplier", metric, SMALL_MULTIPLIER, pending or f"{metric} is not logged"))
            continue
        beta = context.beta
        detail = (
            f"mean token multiplier {multiplier:.3g} on completion tokens: effective β = "
            f"{beta * multiplier:.3g}, under a tenth of β = {beta:g}"
            if multiplier < SMALL_MULTIPLIER
            else f"mean token multiplier {multiplier:.3g} on completion tokens ({prefix}chosen_mean and "
            f"{prefix}rejected_mean): effective β = {beta * multiplier:.3g}"
        )
        records.append(
            _judged("small_multiplier", metric, multiplier, SMALL_MULTIPLIER, multiplier < SMALL_MULTIPLIER, detail)
        )
    return records


def inflated_beta(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    prefixes = _multiplier_prefixes(rows, context, reward_only=True)
    if not prefixes:
        return [
            _na(
                "inflated_beta",
                "mask/u_chosen_mean",
                INFLATED_MULTIPLIER,
                f"{context.display} has no token masks or weights: its multiplier is 1",
            )
        ]
    (prefix,) = prefixes
    metric = f"{prefix}chosen_mean"
    multiplier = _pair_mean(rows[-WINDOW:], prefix)
    if (pending := _window_pending(rows)) or multiplier is None:
        return [_na("inflated_beta", metric, INFLATED_MULTIPLIER, pending or f"{metric} is not logged")]
    beta, inflated = context.beta, multiplier > INFLATED_MULTIPLIER
    detail = (
        f"mean token multiplier {multiplier:.3g} on completion tokens: the method trains at effective "
        f"β = {beta * multiplier:.3g}, {multiplier:.3g}× its nominal β = {beta:g}"
        if inflated
        else f"mean token multiplier {multiplier:.3g}: effective β = {beta * multiplier:.3g} "
        f"(flagged above {INFLATED_MULTIPLIER:g}× β)"
    )
    return [_judged("inflated_beta", metric, multiplier, INFLATED_MULTIPLIER, inflated, detail)]


def concentrated_weights(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    if context.method == "sparsepo":
        metrics = [f"mask/{kind}_top_share" for kind in _mask_kinds(rows)]
    elif context.method == "tidpo":
        metrics = ["weights/top_share"]
    else:
        return [
            _na(
                "concentrated_weights",
                "weights/top_share",
                CONCENTRATED_SHARE,
                f"{context.display} has no token masks or weights",
            )
        ]
    records = []
    for metric in metrics:
        share = _mean(rows[-WINDOW:], metric)
        if (pending := _window_pending(rows)) or share is None:
            reason = pending or f"{metric} is not logged (or no completion had any weight)"
            records.append(_na("concentrated_weights", metric, CONCENTRATED_SHARE, reason))
            continue
        concentrated = share > CONCENTRATED_SHARE
        detail = (
            f"one token holds {share:.1%} of a completion's total weight on average: the method mostly "
            "trains on that token"
            if concentrated
            else f"the largest token holds {share:.1%} of a completion's total weight on average"
        )
        records.append(_judged("concentrated_weights", metric, share, CONCENTRATED_SHARE, concentrated, detail))
    return records


def flat_margins(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    metric = "rewards/margins"
    first, end = _mean(rows[:WINDOW], metric), _mean(rows[-WINDOW:], metric)
    accuracy = _mean(rows[-WINDOW:], "rewards/accuracies")
    if (pending := _end_pending(rows, context)) or first is None or end is None or accuracy is None:
        return [_na("flat_margins", metric, FLAT_MARGIN, pending or "rewards/margins or rewards/accuracies not logged")]
    growth = end - first
    flat = growth < FLAT_MARGIN and accuracy < LEARNED_ACCURACY
    detail = (
        f"margins stayed flat ({first:.4g} over the first {WINDOW} steps, {end:.4g} over the "
        f"last {WINDOW}; reward accuracy {accuracy:.2f})"
        if flat
        else f"margins went from {first:.4g} (first {WINDOW} steps) to {end:.4g} (last {WINDOW}); reward "
        f"accuracy {accuracy:.2f} (flagged when they grow by < {FLAT_MARGIN:g} with accuracy < {LEARNED_ACCURACY:g})"
    )
    return [_judged("flat_margins", metric, growth, FLAT_MARGIN, flat, detail)]


def static_masks(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    if context.method != "sparsepo":
        return [
            _na(
                "static_masks",
                "mask/u_zero_fraction",
                STATIC_ZERO_FRACTION,
                f"{context.display} has no learned mask head",
            )
        ]
    if not context.learned_masks:
        return [
            _na(
                "static_masks",
                "mask/u_zero_fraction",
                STATIC_ZERO_FRACTION,
                "activation masks are constants of the frozen reference: they are not meant to move",
            )
        ]
    penalty = (
        "λ_u = λ_d = 0: nothing rewards sparsity"
        if context.lambdas_zero
        else "λ > 0 rewards sparsity, so the head gets a gradient even where r_t and KL_t are 0"
    )
    records = []
    for kind in _mask_kinds(rows):
        metric = f"mask/{kind}_zero_fraction"
        first, last = rows[:WINDOW], rows[-WINDOW:]
        zeros = _mean(first, metric), _mean(last, metric)
        means = _pair_mean(first, f"mask/{kind}_"), _pair_mean(last, f"mask/{kind}_")
        if (pending := _end_pending(rows, context)) or None in (*zeros, *means):
            records.append(_na("static_masks", metric, STATIC_ZERO_FRACTION, pending or f"mask/{kind}_* not logged"))
            continue
        zero_change, mean_change = abs(zeros[1] - zeros[0]), abs(means[1] - means[0])
        # Relative to the first mean; a head that starts at all zeros and stays there is static too.
        static = zero_change < STATIC_ZERO_FRACTION and mean_change <= STATIC_MEAN * abs(means[0])
        detail = (
            f"zeros {zeros[0]:.1%} → {zeros[1]:.1%} and mean mask {means[0]:.3g} → {means[1]:.3g} from the "
            f"first {WINDOW} steps to the last {WINDOW}; {penalty}"
        )
        detail += (
            ": the head's sparsity is still that of its random start"
            if static
            else f" (flagged when zeros move by < {STATIC_ZERO_FRACTION:g} and the mean by ≤ {STATIC_MEAN:.0%})"
        )
        records.append(_judged("static_masks", metric, zero_change, STATIC_ZERO_FRACTION, static, detail))
    return records


def kl_drift(rows: Rows, context: HealthContext) -> list[HealthCheck]:
    metric = "kl/chosen"
    first, last = rows[:WINDOW], rows[-WINDOW:]
    kl = [_pair_kl(first), _pair_kl(last)]
    margins = _mean(first, "rewards/margins"), _mean(last, "rewards/margins")
    if context.method == "dpo" or (rows and all(value is None for value in kl)):  # TI-DPO: its KL variant only
        return [_na("kl_drift", metric, KL_DRIFT, f"{context.display} logs no KL to the reference")]
    if (pending := _end_pending(rows, context)) or None in (*kl, *margins):
        return [_na("kl_drift", metric, KL_DRIFT, pending or "kl/* or rewards/margins not logged")]
    growth, margin_change = kl[1] - kl[0], margins[1] - margins[0]
    drift = growth > KL_DRIFT and abs(margin_change) < KL_FLAT_MARGIN
    detail = (
        f"KL to the reference went {kl[0]:.3g} → {kl[1]:.3g} nats per completion while margins went "
        f"{margins[0]:.3g} → {margins[1]:.3g}"
    )
    detail += (
        ": the policy drifts without separating the pairs"
        if drift
        else f" (flagged when KL grows by > {KL_DRIFT:g} while margins move by < {KL_FLAT_MARGIN:g})"
    )
    return [_judged("kl_drift", metric, growth, KL_DRIFT, drift, detail)]


def _pair_kl(rows: Rows) -> float | None:
    chosen, rejected = _mean(rows, "kl/chosen"), _mean(rows, "kl/rejected")
    return None if chosen is None or rejected is None else (chosen + rejected) / 2


def anchor_coverage(context: HealthContext, anchored: Collection[int] | None) -> HealthCheck:
    """``anchored``: the training pairs (indices) that ever had an anchor — the keys of the method's
    anchor pool at the end of training; None before the end."""
    name, metric = "anchor_coverage", "anchor_coverage"
    if not context.anchors:
        reason = "γ = 0: no anchors" if context.method == "tidpo" else f"{context.display} samples no anchors"
        return _na(name, metric, FULL_COVERAGE, reason)
    coverage = coverage_of(anchored, context.pairs)
    if anchored is None or coverage is None:
        return _na(name, metric, FULL_COVERAGE, "judged at the end of training, from the anchor pool")
    partial = coverage < FULL_COVERAGE
    detail = f"{len(set(anchored))} of {context.pairs} training pairs ever had an anchor"
    if partial:
        detail += ": the others trained without the triplet term (as weighted DPO)"
    return _judged(name, metric, coverage, FULL_COVERAGE, partial, detail)


def coverage_of(anchored: Collection[int] | None, pairs: int) -> float | None:
    """The share of ``pairs`` training pairs that ever had an anchor (None: unknown)."""
    return None if anchored is None or pairs <= 0 else len(set(anchored)) / pairs


def effective_beta(rows: Rows, context: HealthContext) -> float | None:
    """β × the multiplier of the reward term over the last window (DPO, TDPO: β); None when not logged."""
    prefixes = _multiplier_prefixes(rows, context, reward_only=True)
    if not prefixes:
        return context.beta
    multiplier = _pair_mean(rows[-WINDOW:], prefixes[0])
    return None if multiplier is None else context.beta * multiplier


def check(rows: Rows, context: HealthContext, anchored: Collection[int] | None = None) -> list[HealthCheck]:
    """Every check's record on the metrics rows so far (``anchored``: TI-DPO's anchored pairs, at the end)."""
    return [
        *zero_masks(rows, context),
        *small_multiplier(rows, context),
        *flat_margins(rows, context),
        *inflated_beta(rows, context),
        *concentrated_weights(rows, context),
        *static_masks(rows, context),
        *kl_drift(rows, context),
        anchor_coverage(context, anchored),
    ]


class HealthMonitor:
    """Checks after every step and reports each flag once, as it first appears."""

    def __init__(self, context: HealthContext):
        self.context = context
        self.rows: list[Mapping[str, float]] = []
        self.reported: set[tuple[str, str]] = set()

    def update(self, row: Mapping[str, float]) -> list[HealthFlag]:
        """Add a step's metrics; return the flags raised for the first time."""
        self.rows.append(row)
        new = [
            record
            for record in check(self.rows, self.context)
            if record.flag is not None and (record.name, record.metric) not in self.reported
        ]
        self.reported.update((record.name, record.metric) for record in new)
        return [record.flag for record in new if record.flag is not None]

    def final(self, anchored: Collection[int] | None = None) -> HealthReport:
        """The report at the end of training (``anchored``: TI-DPO's pairs that ever had an anchor, the
        keys of its anchor pool)."""
        context = self.context
        checks = tuple(check(self.rows, context, anchored))
        return HealthReport(
            checks,
            flagged(checks),
            effective_beta(self.rows, context),
            coverage_of(anchored, context.pairs) if context.anchors else None,
            len(self.rows),
        )
