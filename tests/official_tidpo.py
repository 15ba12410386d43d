"""An independent transcription of the released TI-DPO code's formulas, used as a test oracle.

Read from the authors' release (commit e04a092 of the repository the TI-DPO authors published,
``trainers.py`` and ``gradient_attribution.py``) and rewritten in plain tensor code WITHOUT any of
the harness's own functions: attribution on the whole right-padded sequence (target: the max
logit at the last valid position), weights normalised over every valid token of the sequence
(prompt included) to mean 1, each weight at its own token's position (``weight_matrix[:, 1:]``
beside ``labels[:, 1:]``), and TDPO-2 on the weighted log-ratios with the unweighted KL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def attribution(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``compute_language_model_gradient_attribution_from_ids``: ‖∂ max logit(last valid) / ∂e_t‖₁."""
    embeddings = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeddings, attention_mask=attention_mask).logits
    last = (attention_mask.sum(dim=1) - 1).clamp(min=0)
    target = logits[torch.arange(input_ids.shape[0]), last, :].max(dim=-1).values
    (grads,) = torch.autograd.grad(target.sum(), embeddings)
    return grads.abs().sum(dim=-1) * attention_mask


def weight_matrix(
    importances: torch.Tensor, attention_mask: torch.Tensor, lambda_importance: float, prior_sigma_div: float
) -> torch.Tensor:
    """``_compute_token_importance_weights`` (called without labels: every valid token counts)."""
    weights = torch.ones_like(importances)
    for i in range(importances.shape[0]):
        valid = torch.nonzero(attention_mask[i].bool(), as_tuple=False).squeeze(-1)
        if valid.numel() <= 1:
            weights[i].zero_()
            continue
        scores = importances[i][valid].clamp_min(0)
        norm_scores = scores / scores.sum() if scores.sum() > 0 else None
        n = int(valid.numel())
        position = torch.arange(n, dtype=importances.dtype)
        sigma = max(1.0, n / prior_sigma_div)
        prior = torch.exp(-0.5 * ((position - (n - 1) / 2.0) / sigma) ** 2)
        prior = prior / prior.sum()
        mixed = prior if norm_scores is None else lambda_importance * norm_scores + (1 - lambda_importance) * prior
        mixed = mixed / mixed.sum() * float(n)
        weights[i].zero_()
        weights[i][valid] = mixed
    return weights


def weighted_tdpo(
    policy_logits: torch.Tensor,
    reference_logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    beta: float,
    alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_weighted_tdpo_get_batch_logps`` then ``tdpo_loss(if_tdpo2=True)`` on a concatenated batch.

    Returns per-pair losses, chosen and rejected rewards as logged: β·(Σ W·r + Σ KL).
    """
    labels = labels[:, 1:].clone()
    logits, reference_logits, weights = policy_logits[:, :-1, :], reference_logits[:, :-1, :], weights[:, 1:]
    loss_mask = labels != IGNORE
    labels[labels == IGNORE] = 0
    vocab_logps = logits.log_softmax(-1)
    reference_ps = reference_logits.softmax(-1)
    reference_logps = reference_ps.log()
    position_kl = (reference_ps * (reference_logps - vocab_logps)).sum(-1)
    token_logps = torch.gather(vocab_logps, 2, labels.unsqueeze(2)).squeeze(2)
    reference_token = torch.gather(reference_logps, 2, labels.unsqueeze(2)).squeeze(2)
    margin = ((token_logps - reference_token) * weights * loss_mask).sum(-1)
    kl = (position_kl * loss_mask).sum(-1)
    half = labels.shape[0] // 2
    chosen_margin, rejected_margin, chosen_kl, rejected_kl = margin[:half], margin[half:], kl[:half], kl[half:]
    logits_ = chosen_margin - rejected_margin - alpha * (rejected_kl - chosen_kl.detach())
    losses = -F.logsigmoid(beta * logits_)
    return losses, beta * (chosen_margin + chosen_kl), beta * (rejected_margin + rejected_kl)


def triplet(
    anchor: list[list[float]], chosen: list[list[float]], rejected: list[list[float]], margin: float
) -> list[float]:
    """``_compute_triplet_loss`` per pair, before its batch mean: packed (left-aligned) log-ratio vectors,
    each distance over the positions both vectors have."""
    out = []
    for d, b, c in zip(anchor, chosen, rejected, strict=True):
        to_chosen = sum((d[i] - b[i]) ** 2 for i in range(min(len(d), len(b))))
        to_rejected = sum((d[i] - c[i]) ** 2 for i in range(min(len(d), len(c))))
        out.append(max(0.0, to_chosen - to_rejected + margin))
    return out
