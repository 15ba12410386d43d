"""Win rates of the candidate against the baseline, length-controlled, with a paired bootstrap over prompts.

An *outcome* is the candidate's result on one prompt, judged in both orders (``protocol.pair_outcome``):
1 a win, 0 a loss, ½ a tie, ¼ or ¾ when one order was a tie. Unjudged prompts are not outcomes: the
caller leaves them out and reports how many there were.

**Win rate** (:func:`win_rate`): in percent, 0–100, as AlpacaEval reports it: WR = 100 · (1/n) Σᵢ yᵢ.

**Length-controlled win rate** (:func:`length_controlled_win_rate`), after AlpacaEval 2 (Dubois et al.
2024, *Length-Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators*, arXiv 2404.04475):
judges prefer longer answers, so a model can buy win rate with verbosity. A logistic GLM explains the
preference by the length difference,

    logit P(candidate preferred)ᵢ = θ + φ · tanh(dᵢ / σ),   dᵢ = len_candidate,ᵢ − len_baseline,ᵢ,

σ the sample standard deviation (ddof 1) of the dᵢ, and the LC win rate is the preference it predicts
with no length difference: LC = 100 · sigmoid(θ). tanh(d/σ) does not change when all lengths are scaled,
so characters and words give nearly the same fit; use one unit for both models. θ and φ maximise the
likelihood of the outcomes as soft targets (binary cross-entropy; a tie is ½):

    ℓ(θ, φ) = Σᵢ wᵢ [yᵢ log pᵢ + (1 − yᵢ) log(1 − pᵢ)],   pᵢ = sigmoid(θ + φ xᵢ),  xᵢ = tanh(dᵢ / σ),

with weights wᵢ (1, or how often the bootstrap drew prompt i), by Newton–Raphson on (θ, φ): the
gradient is Σ wᵢ (yᵢ − pᵢ)(1, xᵢ), the Hessian −Σ wᵢ pᵢ(1 − pᵢ)(1, xᵢ)(1, xᵢ)ᵀ, and ℓ is concave, so
Newton with step halving converges whenever the maximum exists. The paper's third term, the
instruction's difficulty, is fitted across the annotations of many models on the same instructions; a
comparison of two models does not identify it, so it is left out.

Edge cases, each by an explicit rule:

- all outcomes 1 (or all 0): every answer won (lost) whatever the lengths; the likelihood has no
  maximum (θ → ±∞) and LC is exactly 100 (0), θ = ±inf, φ = 0;
- all length differences equal (or one prompt): σ = 0 and φ is not identified: θ alone is fitted,
  θ = logit(ȳ), and LC equals the plain win rate;
- other separable data (the outcomes are split by length, e.g. every longer answer won and every shorter
  one lost): the maximum is at infinity, Newton's iterates run off (|θ| or |φ| past
  :data:`_DIVERGED`), and the fit is redone with the L2 penalty (λ/2)(θ² + φ²), λ =
  :data:`SEPARATION_L2`, which pulls toward θ = φ = 0 (a tie, no length effect). AlpacaEval regularises
  its GLM too; here the penalty is used only when the unpenalised maximum does not exist, so every fit
  that has one is the exact maximum-likelihood fit, and ``LengthGLM.penalty`` says which it was.

**Paired bootstrap** (:func:`paired_bootstrap`): a resample draws prompts with replacement, each with
both its answers and both orders' judgments (one paired outcome), and recomputes both win rates (the
GLM refitted, σ included); the intervals are percentile intervals (``core.stats``), drawn as
``core.stats.bootstrap_mean`` draws, so the win rate's interval is the one it gives for the outcomes ×100.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokenpo.core.stats import Interval, mean_and_stderr, percentile_interval, two_level_bootstrap
from tokenpo.evals.errors import EvalError

# The penalty of a refit when the maximum-likelihood GLM does not exist (separable outcomes).
SEPARATION_L2 = 1e-2
# |θ| or |φ| beyond this means Newton is following a likelihood that keeps rising to infinity: a real
# maximum that far out would need a win share within sigmoid(-50) ≈ 2e-22 of 0 or 1.
_DIVERGED = 50.0
_MAX_ITERATIONS = 100
_STEP_TOLERANCE = 1e-12


@dataclass(frozen=True)
class LengthGLM:
    """The fitted length GLM: ``theta`` (the preference at equal length, on the logit scale), ``phi`` (the
    length effect; 0 when not identified), ``sigma`` (the length differences' standard deviation; 0 when
    they do not vary) and ``penalty`` (λ of the fit: 0 for maximum likelihood)."""

    theta: float
    phi: float
    sigma: float
    penalty: float

    @property
    def win_rate(self) -> float:
        """100 · sigmoid(θ): the length-controlled win rate, in percent."""
        return 100.0 * _sigmoid(self.theta)


def _sigmoid(z: Any) -> Any:
    # 1/(1 + e^{-z}) overflows for very negative z; the tanh form is exact and never does.
    return 0.5 * (1.0 + np.tanh(np.asarray(z, dtype=float) / 2.0)) if np.ndim(z) else 0.5 * (1.0 + math.tanh(z / 2))


def _outcomes(outcomes: Sequence[float]) -> np.ndarray:
    y = np.asarray(outcomes, dtype=float)
    if y.ndim != 1 or y.size == 0:
        raise EvalError("win rate", "outcomes", "needs at least one judged pair")
    if not np.all(np.isfinite(y)) or np.any(y < 0) or np.any(y > 1):
        raise EvalError("win rate", "outcomes", "every outcome must lie in [0, 1]")
    return y


def _lengths(name: str, lengths: Sequence[float], n: int) -> np.ndarray:
    values = np.asarray(lengths, dtype=float)
    if values.shape != (n,):
        raise EvalError("length-controlled win rate", name, f"has {values.size} lengths for {n} outcomes")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise EvalError("length-controlled win rate", name, "every length must be a finite number ≥ 0")
    return values


def win_rate(outcomes: Sequence[float]) -> float:
    """WR = 100 · mean(outcomes), in percent (a tie counts half)."""
    return 100.0 * float(np.mean(_outcomes(outcomes)))


def fit_length_glm(
    outcomes: Sequence[float],
    candidate_lengths: Sequence[float],
    baseline_lengths: Sequence[float],
    weights: Sequence[float] | None = None,
) -> LengthGLM:
    """The length GLM logit pᵢ = θ + φ · tanh(dᵢ/σ) fitted to the outcomes (module docstring), each prompt
    counted ``weights[i]`` times (default once; 0 leaves it out)."""
    y = _outcomes(outcomes)
    cand = _lengths("candidate_lengths", candidate_lengths, y.size)
    d = cand - _lengths("baseline_lengths", baseline_lengths, y.size)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != y.shape or np.any(w < 0) or not np.any(w > 0):
        raise EvalError("length-controlled win rate", "weights", "needs one weight ≥ 0 per outcome, some > 0")
    keep = w > 0
    y, d, w = y[keep], d[keep], w[keep]
    total = float(w.sum())
    mean_y = float(w @ y / total)
    if np.all(y == 1.0) or np.all(y == 0.0):
        return LengthGLM(math.inf if y[0] == 1.0 else -math.inf, 0.0, _sigma(d, w), 0.0)
    sigma = _sigma(d, w)
    if sigma == 0.0:
        # No length variation: the intercept-only fit, whose maximum is where sigmoid(θ) = ȳ.
        return LengthGLM(math.log(mean_y / (1.0 - mean_y)), 0.0, 0.0, 0.0)
    x = np.tanh(d / sigma)
    fitted = _newton(x, y, w, 0.0)
    penalty = 0.0
    if fitted is None:
        penalty = SEPARATION_L2
        fitted = _newton(x, y, w, penalty)
        if fitted is None:  # the penalised likelihood is strictly concave: a failure here is a bug
            raise RuntimeError("the penalised length GLM did not converge")
    return LengthGLM(fitted[0], fitted[1], sigma, penalty)


def _sigma(d: np.ndarray, w: np.ndarray) -> float:
    """The weighted sample standard deviation (ddof 1, weights as repeat counts); 0 when d is constant."""
    if np.all(d == d[0]) or w.sum() <= 1.0:
        return 0.0
    mean = w @ d / w.sum()
    return float(math.sqrt(w @ (d - mean) ** 2 / (w.sum() - 1.0)))


def _loss(beta: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> float:
    """−ℓ + (λ/2)|β|²; log(1 + e^z) − y·z is the soft-target cross-entropy on the logit, overflow-free."""
    z = beta[0] + beta[1] * x
    return float(w @ (np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * beta @ beta)


def _newton(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[float, float] | None:
    """(θ, φ) minimising ``_loss`` by Newton–Raphson with step halving; None when the iterates run off to
    infinity (no finite minimum: separable data)."""
    design = np.stack([np.ones_like(x), x], axis=1)
    beta = np.zeros(2)
    loss = _loss(beta, x, y, w, l2)
    for _ in range(_MAX_ITERATIONS):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (w * (p - y)) + l2 * beta
        hessian = design.T @ (design * (w * p * (1.0 - p))[:, None]) + l2 * np.eye(2)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return None  # p(1 − p) vanished everywhere: the iterates are at saturation
        # Halve until the loss does not rise: a full Newton step can overshoot far from the optimum.
        scale = 1.0
        while scale > 1e-10:
            trial = beta - scale * step
            trial_loss = _loss(trial, x, y, w, l2)
            if trial_loss <= loss + 1e-12 * abs(loss):
                break
            scale /= 2.0
        beta, loss = trial, trial_loss
        if np.max(np.abs(beta)) > _DIVERGED:
            return None
        if np.max(np.abs(scale * step)) < _STEP_TOLERANCE:
            return float(beta[0]), float(beta[1])
    return None


def length_controlled_win_rate(
    outcomes: Sequence[float], candidate_lengths: Sequence[float], baseline_lengths: Sequence[float]
) -> float:
    """LC = 100 · sigmoid(θ) of :func:`fit_length_glm`: the win rate predicted at equal length, in percent."""
    return fit_length_glm(outcomes, candidate_lengths, baseline_lengths).win_rate


def paired_bootstrap(
    outcomes: Sequence[float],
    candidate_lengths: Sequence[float],
    baseline_lengths: Sequence[float],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Both win rates with percentile intervals over ``n_boot`` resamples of the prompts (module docstring),
    drawn from ``numpy.random.default_rng(seed)``.

    Returns ``win_rate`` and ``length_controlled_win_rate`` (``Interval``s, covers ``prompts``; the win
    rate's ``stderr`` is 100 × the outcomes' standard error), ``glm`` (the full data's ``LengthGLM``),
    ``penalised_resamples`` (resamples whose GLM needed the separation penalty), ``n_pairs``, ``n_boot``,
    ``confidence`` and ``seed``. The length-controlled rate's ``stderr`` is the standard deviation of its
    bootstrap replicates (ddof 1; None with one resample).
    """
    y = _outcomes(outcomes)
    cand = _lengths("candidate_lengths", candidate_lengths, y.size)
    base = _lengths("baseline_lengths", baseline_lengths, y.size)
    if n_boot < 1:
        raise EvalError("paired bootstrap", "n_boot", f"must be at least 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise EvalError("paired bootstrap", "confidence", f"must lie strictly between 0 and 1, got {confidence}")
    glm = fit_length_glm(y, cand, base)
    penalised = 0

    def both_rates(counts: np.ndarray, _seeds: Callable[[tuple], np.ndarray]) -> np.ndarray:
        # One call sees a chunk of resamples; each row is one resample's draw counts, so the win rate is a
        # weighted mean and the GLM a weighted fit (a prompt drawn k times counts k times).
        nonlocal penalised
        rows = np.empty((counts.shape[0], 2))
        rows[:, 0] = 100.0 * (counts @ y) / y.size
        for r, row in enumerate(counts):
            fit = fit_length_glm(y, cand, base, weights=row)
            penalised += fit.penalty > 0
            rows[r, 1] = fit.win_rate
        return rows

    # two_level_bootstrap concatenates the per-chunk results along the first axis: (n_boot, 2).
    replicates = two_level_bootstrap(both_rates, y.size, {}, n_boot, np.random.default_rng(seed))
    mean, stderr = mean_and_stderr(y.tolist())
    wr_low, wr_high = percentile_interval(replicates[:, 0], confidence)
    lc_low, lc_high = percentile_interval(replicates[:, 1], confidence)
    return {
        "win_rate": Interval(100.0 * mean, wr_low, wr_high, "bootstrap", covers="prompts", stderr=100.0 * stderr),
        # A refitted model's rate has no closed-form standard error: the bootstrap replicates' standard
        # deviation stands for it (what a reader of results.json, or the leaderboard, combines).
        "length_controlled_win_rate": Interval(
            glm.win_rate, lc_low, lc_high, "bootstrap", covers="prompts", stderr=_replicate_sd(replicates[:, 1])
        ),
        "glm": glm,
        "penalised_resamples": penalised,
        "n_pairs": int(y.size),
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,
    }


def _replicate_sd(replicates: np.ndarray) -> float | None:
    return float(np.std(replicates, ddof=1)) if replicates.size > 1 else None
