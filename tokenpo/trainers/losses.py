"""Preference losses as pure functions over tensors: one function per method, shared pieces once.

Conventions (the layout of :func:`tokenpo.trainers.data.collate_pairs` and of one concatenated forward):

- Rows come in pairs' order, chosen rows first: a tensor with 2B rows holds the B chosen
  completions in rows 0..B−1 and the B rejected ones in rows B..2B−1.
- Token tensors have shape (2B, T) and go with ``mask`` (2B, T): 1 on completion tokens, 0 on
  prompt and padding. r_t = log πθ(y_t|·) − log πref(y_t|·) is a token log-ratio; KL_t is
  KL(πref(·|x, y<t) ‖ πθ(·|x, y<t)) over the full vocabulary at that position.
- The token log-probs and token KL run on the block-wise autograd kernels of
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


def split_pairs(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B, ...) → chosen rows (B, ...), rejected rows (B, ...)."""
    chosen, rejected = rows.chunk(2, dim=0)
    return chosen, rejected


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


def _rewards(beta: float, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    chosen, rejected = split_pairs(beta * rows.detach())
    return chosen, rejected


# ----------------------------------------------------------------------------- the methods


def dpo_loss(logratios: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> PairLosses:
    """DPO (Rafailov et al., 2023), conservative when ``label_smoothing`` ε > 0.

    h = Σ_t r_t(y_w) − Σ_t r_t(y_l);  L = −(1−ε)·log σ(β·h) − ε·log σ(−β·h).
    Rewards: β·Σ_t r_t(y).

    Args:
        logratios: (2B,) sequence log-ratios Σ_t r_t, chosen rows then rejected rows.
    """
    chosen, rejected = split_pairs(logratios)
    h = chosen - rejected
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    return PairLosses(losses, *_rewards(beta, logratios))


def ipo_loss(logratios: torch.Tensor, lengths: torch.Tensor, beta: float) -> PairLosses:
    """IPO (Azar et al., 2023) with length-normalised log-ratios, as TRL and the IPO authors use.

    h̄ = Σ_t r_t(y_w)/|y_w| − Σ_t r_t(y_l)/|y_l|;  L = (h̄ − 1/(2β))².  Rewards: β·Σ_t r_t(y).

    Args:
        logratios: (2B,) sequence log-ratios.  lengths: (2B,) completion lengths in tokens.
    """
    chosen, rejected = split_pairs(logratios / lengths.clamp(min=1))
    losses = (chosen - rejected - 1 / (2 * beta)) ** 2
    return PairLosses(losses, *_rewards(beta, logratios))


def tdpo_loss(
    logratios: torch.Tensor, kl: torch.Tensor, beta: float, variant: Literal[1, 2] = 2, alpha: float = 0.5
) -> PairLosses:
    """TDPO (Zeng et al., 2024): DPO with the sequential KL of each completion.

    u = Σ r_t(y_w) − Σ r_t(y_l);  D(y) = Σ_t KL_t(y).
    TDPO-1: L = −log σ(β·(u − (D(y_l) − D(y_w)))).
    TDPO-2: L = −log σ(β·u − α·β·(D(y_l) − sg[D(y_w)])), sg = stop-gradient.
    Rewards, as the official code logs them: β·(Σ_t r_t(y) + D(y)).

    Args:
        logratios: (2B,) sequence log-ratios.  kl: (2B,) sequence KL D(y).
    """
    chosen, rejected = split_pairs(logratios)
    chosen_kl, rejected_kl = split_pairs(kl)
    if variant == 1:
        logits = beta * (chosen - rejected - (rejected_kl - chosen_kl))
    else:
        logits = beta * (chosen - rejected) - alpha * beta * (rejected_kl - chosen_kl.detach())
    return PairLosses(-F.logsigmoid(logits), *_rewards(beta, logratios + kl))


def sparsepo_loss(
    token_logratios: torch.Tensor,
    token_kl: torch.Tensor,
    mask_u: torch.Tensor,
    mask_d: torch.Tensor,
    mask: torch.Tensor,
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

    Args:
        token_logratios, token_kl, mask_u, mask_d, mask: (2B, T); masks are non-negative and
        are only read on completion tokens (``mask``).
    """
    rewards = masked_sum(mask_u * token_logratios, mask)
    kl = masked_sum(mask_d * token_kl, mask)
    chosen, rejected = split_pairs(rewards)
    chosen_kl, rejected_kl = split_pairs(kl)
    l1_u = sum(split_pairs(masked_sum(mask_u.abs(), mask)))
    l1_d = sum(split_pairs(masked_sum(mask_d.abs(), mask)))
    losses = (
        -F.logsigmoid(beta * (chosen - rejected - (rejected_kl - chosen_kl)))
        + lambda_u * l1_u
        + lambda_d * l1_d
    )
    return PairLosses(losses, *_rewards(beta, rewards - kl))


def weighted_dpo_loss(
    token_logratios: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    sequence_kl: torch.Tensor | None = None,
    kl_alpha: float = 0.5,
) -> PairLosses:
    """TI-DPO (Yang et al., 2025): DPO on token-weighted log-ratios; with the KL term of its code.

    Δr = Σ_t W_t(y_w)·r_t(y_w) − Σ_t W_t(y_l)·r_t(y_l);  L = −log σ(β·Δr) (the printed formula).
    With ``sequence_kl`` D (the released code, "tdpo2-kl"): TDPO-2 on the weighted log-ratios,
    L = −log σ(β·Δr − α·β·(D(y_l) − sg[D(y_w)])), rewards β·(Σ_t W_t·r_t + D(y)).
    W ≡ 1 is DPO (and TDPO-2 with the KL term). Rewards without KL: β·Σ_t W_t·r_t.

    Args:
        token_logratios, weights, mask: (2B, T); weights are constants (detached here).
        sequence_kl: (2B,) Σ_t KL_t, or None.
    """
    weighted = masked_sum(weights.detach() * token_logratios, mask)
    if sequence_kl is None:
        return dpo_loss(weighted, beta)
    return tdpo_loss(weighted, sequence_kl, beta, variant=2, alpha=kl_alpha)


def triplet_loss(
    anchor_logratios: torch.Tensor,
    anchor_mask: torch.Tensor,
    token_logratios: torch.Tensor,
    mask: torch.Tensor,
    margin: float,
    alignment: Literal["pairwise", "truncate", "mean"] = "pairwise",
) -> torch.Tensor:
    """TI-DPO's triplet term: pull the anchor's log-ratios towards the chosen, away from the rejected.

    L_trip = max(0, ‖d − b‖² − ‖d − c‖² + α), with d, b, c the per-token log-ratio vectors of the
    anchor, chosen and rejected completions, each left-aligned (token i of the completion in
    column i). Completions differ in length, so:
    - ``pairwise`` (the released code): ‖d − b‖² sums over the first min(|d|, |b|) tokens and
      ‖d − c‖² over the first min(|d|, |c|);
    - ``truncate``: both sum over the first T* = min(|d|, |b|, |c|) tokens (the tokens all three have);
    - ``mean``: the vectors are replaced by their length-normalised sums (one number each).

    Args:
        anchor_logratios, anchor_mask: (B, Ta) for the anchor completion of each pair.
        token_logratios, mask: (2B, T), chosen rows then rejected rows.
    Returns:
        (B,) per-pair triplet losses.
    """
    d, d_len = left_align(anchor_logratios, anchor_mask)
    pair, pair_len = left_align(token_logratios, mask)
    (b, c), (b_len, c_len) = split_pairs(pair), split_pairs(pair_len)
    if alignment == "mean":
        d_bar, b_bar, c_bar = (x.sum(-1) / n.clamp(min=1) for x, n in ((d, d_len), (b, b_len), (c, c_len)))
        return torch.relu((d_bar - b_bar) ** 2 - (d_bar - c_bar) ** 2 + margin)
    if alignment == "truncate":
        shared = torch.minimum(torch.minimum(d_len, b_len), c_len)
        to_chosen = to_rejected = shared
    else:
        to_chosen, to_rejected = torch.minimum(d_len, b_len), torch.minimum(d_len, c_len)
    width = max(d.shape[1], pair.shape[1])
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


def normalise(values: torch.Tensor, mask: torch.Tensor, how: Literal["sum", "mean"]) -> torch.Tensor:
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
    prior_weights = normalise(prior.float(), mask, how)
    mixed = importance_lambda * normalise(attribution, mask, how) + (1 - importance_lambda) * prior_weights
    has_attribution = attribution.sum(-1, keepdim=True) > 0
    weights = torch.where(has_attribution, mixed, prior_weights)
    return (weights * (mask.sum(-1, keepdim=True) > 1)).detach()
