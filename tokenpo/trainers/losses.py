"""Preference losses as pure functions over tensors: one function per method, shared pieces once.

Conventions:

- A loss takes each pair's chosen (y_w) and rejected (y_l) quantities as separate, named tensors
  of shape (B,), as torchtune's (``policy_chosen_logps``, ...) and the TDPO authors'
  (``chosen_logps_margin``, ``rejected_position_kl``) do: the meaning travels with the name, never
  with a row order. How a batch lays out its rows is the engine's business
  (:func:`tokenpo.trainers.methods.split_pairs`); the caller splits where it lays them out.
- ``*_logratios`` are sequence log-ratios Σ_t r_t (B,), r_t = log πθ(y_t|·) − log πref(y_t|·) the
  token log-ratio; ``*_kl`` are sequence KLs Σ_t KL_t (B,), KL_t = KL(πref(·|x, y<t) ‖ πθ(·|x, y<t))
  over the full vocabulary at that position. A method that weights tokens (SparsePO's masks,
  TI-DPO's weights) passes the weighted sums; its docstring says which.
- Token tensors have shape (N, T) and go with ``mask`` (N, T): 1 on completion tokens, 0 on
  prompt and padding. The token log-probs and token KL run on the block-wise autograd kernels of
  :mod:`tokenpo.trainers.kernels`; everything here is plain tensor arithmetic.
- A loss returns :class:`PairLosses`: per-pair losses (B,) that carry gradients, and per-pair
  implicit rewards (B,) that are detached. The caller reduces (mean over pairs) and logs.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from tokenpo.trainers.kernels import LogpsAndKL, TargetLogProbs

# ----------------------------------------------------------------------------- shared pieces


class PairLosses(NamedTuple):
    losses: torch.Tensor  # (B,) with gradients
    chosen_rewards: torch.Tensor  # (B,) detached
    rejected_rewards: torch.Tensor  # (B,) detached


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_t values_t · mask_t over the last dimension."""
    return (values * mask).sum(dim=-1)


def token_logps(logits: torch.Tensor, targets: torch.Tensor, block: int = 512) -> torch.Tensor:
    """log π(y_t | ·) = z_t(y_t) − logsumexp_v z_t(v) for every position, without a full log-softmax
    (:class:`tokenpo.trainers.kernels.TargetLogProbs`).

    Args:
        logits: (N, T, V) scores at each position (any float dtype).
        targets: (N, T) token ids whose log-probabilities are wanted (int64).
        block: positions processed at once; bounds the float32 working memory to block × V.
    Returns:
        (N, T) log-probabilities in float32 (float64 for float64 logits).
    """
    return TargetLogProbs.apply(logits, targets, block)


def token_logps_and_kl(
    policy_logits: torch.Tensor, reference_logits: torch.Tensor, targets: torch.Tensor, block: int = 512
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`token_logps` of both models and :func:`token_kl`, from one pass over the vocabulary.

    log π(y_t) = z(y_t) − lse(z) for each model;  KL_t = Σ_v πref(v)·(z_ref(v) − z_θ(v)) − lse(z_ref) + lse(z_θ).
    What TDPO, SparsePO and TI-DPO's KL variant need from a live reference; the values equal the three
    separate calls, at about half their cost (:class:`tokenpo.trainers.kernels.LogpsAndKL`).

    Args:
        policy_logits: (N, T, V), with gradients.  reference_logits: (N, T, V), no gradients.
        targets: (N, T) token ids.
    Returns:
        policy log-probs (N, T), reference log-probs (N, T) (no gradient), KL_t (N, T); float32
        (float64 for float64 logits).
    """
    return LogpsAndKL.apply(policy_logits, reference_logits, targets, block)


def token_kl(policy_logits: torch.Tensor, reference_logits: torch.Tensor, block: int = 512) -> torch.Tensor:
    """KL_t = KL(πref(·|t) ‖ πθ(·|t)) at every position; memory bounded by ``block`` × V.

    Args:
        policy_logits: (N, T, V), with gradients.
        reference_logits: (N, T, V), no gradients flow into it.
    Returns:
        (N, T) in float32 (float64 for float64 logits), ≥ 0 up to rounding (a few ulps below 0 where the
        two distributions are equal).
    """
    targets = torch.zeros(policy_logits.shape[:-1], dtype=torch.long, device=policy_logits.device)
    return token_logps_and_kl(policy_logits, reference_logits, targets, block)[2]


# ----------------------------------------------------------------------------- the methods


def dpo_loss(
    chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float, label_smoothing: float = 0.0
) -> PairLosses:
    """DPO (Rafailov et al., 2023), conservative when ``label_smoothing`` ε > 0.

    h = Σ_t r_t(y_w) − Σ_t r_t(y_l);  L = −(1−ε)·log σ(β·h) − ε·log σ(−β·h).
    Rewards: β·Σ_t r_t(y).

    Args:
        chosen_logratios: (B,) Σ_t r_t(y_w).  rejected_logratios: (B,) Σ_t r_t(y_l).
    """
    h = chosen_logratios - rejected_logratios
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    return PairLosses(losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())


def ipo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float,
) -> PairLosses:
    """IPO (Azar et al., 2023) with length-normalised log-ratios, as TRL and the IPO authors use.

    h̄ = Σ_t r_t(y_w)/|y_w| − Σ_t r_t(y_l)/|y_l|;  L = (h̄ − 1/(2β))².  Rewards: β·Σ_t r_t(y).

    Args:
        chosen_logratios, rejected_logratios: (B,) Σ_t r_t(y_w), Σ_t r_t(y_l).
        chosen_lengths, rejected_lengths: (B,) |y_w|, |y_l| in tokens.
    """
    chosen = chosen_logratios / chosen_lengths.clamp(min=1)
    rejected = rejected_logratios / rejected_lengths.clamp(min=1)
    losses = (chosen - rejected - 1 / (2 * beta)) ** 2
    return PairLosses(losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())


def tdpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    chosen_kl: torch.Tensor,
    rejected_kl: torch.Tensor,
    beta: float,
    variant: Literal["tdpo1", "tdpo2"] = "tdpo2",
    kl_alpha: float = 0.5,
) -> PairLosses:
    """TDPO (Zeng et al., 2024): DPO with the sequential KL of each completion.

    u = Σ r_t(y_w) − Σ r_t(y_l);  D(y) = Σ_t KL_t(y).
    TDPO-1: L = −log σ(β·(u − (D(y_l) − D(y_w)))).
    TDPO-2: L = −log σ(β·u − α·β·(D(y_l) − sg[D(y_w)])), α = ``kl_alpha``, sg = stop-gradient.
    Rewards, as the official code logs them: β·(Σ_t r_t(y) + D(y)).

    Args:
        chosen_logratios, rejected_logratios: (B,) Σ_t r_t(y_w), Σ_t r_t(y_l).
        chosen_kl, rejected_kl: (B,) D(y_w), D(y_l).
    """
    if variant == "tdpo1":
        logits = beta * (chosen_logratios - rejected_logratios - (rejected_kl - chosen_kl))
    else:
        logits = beta * (chosen_logratios - rejected_logratios) - kl_alpha * beta * (rejected_kl - chosen_kl.detach())
    return PairLosses(
        -F.logsigmoid(logits),
        beta * (chosen_logratios + chosen_kl).detach(),
        beta * (rejected_logratios + rejected_kl).detach(),
    )


def sparsepo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    chosen_kl: torch.Tensor,
    rejected_kl: torch.Tensor,
    chosen_l1_u: torch.Tensor,
    rejected_l1_u: torch.Tensor,
    chosen_l1_d: torch.Tensor,
    rejected_l1_d: torch.Tensor,
    beta: float,
    lambda_u: float = 0.0,
    lambda_d: float = 0.0,
) -> PairLosses:
    """SparsePO (Christopoulou et al., 2024): token masks m_u on rewards and m_d on the KL.

    u = Σ_t m_u(y_w,t)·r_t(y_w) − Σ_t m_u(y_l,t)·r_t(y_l)
    δ = Σ_t m_d(y_l,t)·KL_t(y_l) − Σ_t m_d(y_w,t)·KL_t(y_w)
    L = −log σ(β·(u − δ)) + λ_u·(‖m_u(y_w)‖₁ + ‖m_u(y_l)‖₁) + λ_d·(‖m_d(y_w)‖₁ + ‖m_d(y_l)‖₁)
    m_u = 1, m_d = 0, λ = 0 is DPO; m_u = m_d = 1, λ = 0 is TDPO-1.
    Rewards, as the official code logs them: β·(Σ_t m_u·r_t − Σ_t m_d·KL_t) (their margin is
    β·(u + δ), not the loss's β·(u − δ)).

    Args (each (B,), sums over completion tokens; masks are non-negative):
        chosen_logratios, rejected_logratios: Σ_t m_u(y,t)·r_t(y) for y_w, y_l.
        chosen_kl, rejected_kl: Σ_t m_d(y,t)·KL_t(y) for y_w, y_l.
        chosen_l1_u, rejected_l1_u: ‖m_u(y)‖₁ for y_w, y_l.  chosen_l1_d, rejected_l1_d: ‖m_d(y)‖₁.
    """
    losses = (
        -F.logsigmoid(beta * (chosen_logratios - rejected_logratios - (rejected_kl - chosen_kl)))
        + lambda_u * (chosen_l1_u + rejected_l1_u)
        + lambda_d * (chosen_l1_d + rejected_l1_d)
    )
    return PairLosses(
        losses, beta * (chosen_logratios - chosen_kl).detach(), beta * (rejected_logratios - rejected_kl).detach()
    )


def weighted_dpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    beta: float,
    chosen_kl: torch.Tensor | None = None,
    rejected_kl: torch.Tensor | None = None,
    kl_alpha: float = 0.5,
) -> PairLosses:
    """TI-DPO (Yang et al., 2025): DPO on token-weighted log-ratios; with the KL term of its code.

    Δr = Σ_t W_t(y_w)·r_t(y_w) − Σ_t W_t(y_l)·r_t(y_l);  L = −log σ(β·Δr) (the printed formula).
    With the sequence KLs D (the released code, "tdpo2-kl"): TDPO-2 on the weighted log-ratios,
    L = −log σ(β·Δr − α·β·(D(y_l) − sg[D(y_w)])), α = ``kl_alpha``, rewards β·(Σ_t W_t·r_t + D(y)).
    W ≡ 1 is DPO (and TDPO-2 with the KL term). Rewards without KL: β·Σ_t W_t·r_t.

    Args:
        chosen_logratios, rejected_logratios: (B,) Σ_t W_t(y)·r_t(y) for y_w, y_l, the weights W
            constants (no gradient).
        chosen_kl, rejected_kl: (B,) D(y_w), D(y_l) = Σ_t KL_t, both or neither.
    """
    if (chosen_kl is None) != (rejected_kl is None):
        raise ValueError("weighted_dpo_loss takes both chosen_kl and rejected_kl, or neither")
    if chosen_kl is None:
        return dpo_loss(chosen_logratios, rejected_logratios, beta)
    return tdpo_loss(chosen_logratios, rejected_logratios, chosen_kl, rejected_kl, beta, "tdpo2", kl_alpha)


def triplet_loss(
    anchor_token_logratios: torch.Tensor,
    anchor_mask: torch.Tensor,
    chosen_token_logratios: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_token_logratios: torch.Tensor,
    rejected_mask: torch.Tensor,
    margin: float,
    alignment: Literal["pairwise", "truncate", "mean"] = "pairwise",
) -> torch.Tensor:
    """TI-DPO's triplet term: pull the anchor's log-ratios towards the chosen, away from the rejected.

    L_trip = max(0, ‖d − b‖² − ‖d − c‖² + α), with d, b, c the per-token log-ratio vectors of the
    anchor, chosen and rejected completions, each left-aligned (token i of the completion in
    column i), and α = ``margin``. Completions differ in length, so:
    - ``pairwise`` (the released code): ‖d − b‖² sums over the first min(|d|, |b|) tokens and
      ‖d − c‖² over the first min(|d|, |c|);
    - ``truncate``: both sum over the first T* = min(|d|, |b|, |c|) tokens (the tokens all three have);
    - ``mean``: the vectors are replaced by their length-normalised sums (one number each).

    Args:
        anchor_token_logratios, anchor_mask: (A, Ta) r_t of each pair's anchor completion.
        chosen_token_logratios, chosen_mask: (A, T) r_t of the same pairs' chosen completions.
        rejected_token_logratios, rejected_mask: (A, T) r_t of their rejected completions.
    Returns:
        (A,) per-pair triplet losses.
    """
    d, d_len = left_align(anchor_token_logratios, anchor_mask)
    b, b_len = left_align(chosen_token_logratios, chosen_mask)
    c, c_len = left_align(rejected_token_logratios, rejected_mask)
    pair_width = max(b.shape[1], c.shape[1])  # the chosen and rejected vectors on one width
    b, c = _fit(b, pair_width), _fit(c, pair_width)
    if alignment == "mean":
        d_bar, b_bar, c_bar = (x.sum(-1) / n.clamp(min=1) for x, n in ((d, d_len), (b, b_len), (c, c_len)))
        return torch.relu((d_bar - b_bar) ** 2 - (d_bar - c_bar) ** 2 + margin)
    if alignment == "truncate":
        shared = torch.minimum(torch.minimum(d_len, b_len), c_len)
        to_chosen = to_rejected = shared
    else:
        to_chosen, to_rejected = torch.minimum(d_len, b_len), torch.minimum(d_len, c_len)
    width = max(d.shape[1], pair_width)
    d, b, c = (_fit(x, width) for x in (d, b, c))
    columns = torch.arange(width, device=d.device)[None, :]
    chosen_distance = (((d - b) ** 2) * (columns < to_chosen[:, None])).sum(-1)
    rejected_distance = (((d - c) ** 2) * (columns < to_rejected[:, None])).sum(-1)
    return torch.relu(chosen_distance - rejected_distance + margin)


def left_align(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's masked entries to the front, in order: (N, T) → (N, max length), lengths (N,)."""
    lengths = mask.sum(-1).long()
    width = int(lengths.max().item()) if lengths.numel() else 0
    out = values.new_zeros(values.shape[0], width)
    destination = torch.arange(width, device=values.device)[None, :] < lengths[:, None]
    out = out.masked_scatter(destination, values[mask.bool()])
    return out, lengths


def _fit(rows: torch.Tensor, width: int) -> torch.Tensor:
    if rows.shape[1] >= width:
        return rows[:, :width]
    return F.pad(rows, (0, width - rows.shape[1]))


# ----------------------------------------------------------------------------- TI-DPO weights


def gaussian_prior(mask: torch.Tensor, sigma: float | None) -> torch.Tensor:
    """TI-DPO's position prior over each row's tokens t = 0..T−1 of ``mask`` (zero elsewhere).

    P(t) = exp(−½((t − μ)/σ_T)²), μ = (T−1)/2, σ_T = max(1, ``sigma``·T) (paper: ¼; the released
    code's default: ⅛; the floor of 1 token is the released code's). ``sigma=None`` gives the flat
    prior P(t) = 1.
    """
    mask = mask.float()
    if sigma is None:
        return mask
    position = mask.cumsum(-1) - 1
    length = mask.sum(-1, keepdim=True)
    mu = (length - 1) / 2
    scale = (sigma * length).clamp(min=1.0)
    return torch.exp(-0.5 * ((position - mu) / scale) ** 2) * mask


def normalise_over_tokens(values: torch.Tensor, mask: torch.Tensor, how: Literal["sum", "mean"]) -> torch.Tensor:
    """Scale each row's values on ``mask`` to sum 1 (``sum``) or to mean 1 (``mean``); 0 elsewhere."""
    values = values * mask
    total = values.sum(-1, keepdim=True)
    if how == "mean":
        total = total / mask.sum(-1, keepdim=True).clamp(min=1)
    return values / total.clamp(min=torch.finfo(values.dtype).tiny)


def importance_weights(
    attribution: torch.Tensor,
    prior: torch.Tensor,
    mask: torch.Tensor,
    importance_lambda: float,
    how: Literal["sum", "mean"],
) -> torch.Tensor:
    """W_t = λ·Î_t + (1−λ)·P̂_t, with Î and P̂ the attribution and prior normalised the same way.

    As the released code: a row whose attribution is zero everywhere gets the prior alone (P̂), and
    a row with fewer than two tokens gets zero weights.

    Args:
        attribution: (N, T) non-negative scores I_t = ‖∂L_target/∂e_t‖₁.
        prior: (N, T) from :func:`gaussian_prior` over the same ``mask``.
        mask: (N, T) the tokens the weights are normalised over.
    Returns:
        (N, T) detached weights, zero outside ``mask``.
    """
    mask = mask.float()
    attribution = attribution.float().clamp(min=0) * mask
    prior_weights = normalise_over_tokens(prior.float(), mask, how)
    mixed = importance_lambda * normalise_over_tokens(attribution, mask, how) + (1 - importance_lambda) * prior_weights
    has_attribution = attribution.sum(-1, keepdim=True) > 0
    weights = torch.where(has_attribution, mixed, prior_weights)
    return (weights * (mask.sum(-1, keepdim=True) > 1)).detach()
