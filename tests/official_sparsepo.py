"""An independent transcription of the official SparsePO formulas, used as a test oracle.

Read from huawei-noah/HEBO, ``SparsePO/`` (``src/trainers/sparse_trainer.py``,
``src/trainers/mapo_trainer.py``, ``src/masks/mask_models.py``, ``src/masks/pipeline_*.py``) and
rewritten here in plain tensor code with the official conventions, on purpose WITHOUT any of the
harness's own functions: full-sequence logits, labels with -100 on prompt and padding, the shift
``labels[:, 1:]`` / ``logits[:, :-1]``, masks read from ``states[:, :-1]``, the full log-softmax,
the KL written as the official code writes it (Σ p_ref·(log p_θ − log p_ref), i.e. minus the KL).
The official code casts the z-normalisation's std, min and max to float16; the oracle keeps full
precision (the formula, not that rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``get_batch_logits``: the logits at t−1 predict the label at t."""
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    loss_mask = labels != IGNORE
    labels[labels == IGNORE] = 0
    return logits, loss_mask, labels


def simple_mask_all_layers(
    states: list[torch.Tensor],
    norm: torch.nn.LayerNorm,
    weights: torch.Tensor,
    biases: torch.Tensor,
    mixer: torch.Tensor,
) -> torch.Tensor:
    """``SimpleMaskAllLayers`` with dropout off: per layer ReLU(w·LN(h) + b), a bias-free mixer, ReLU.

    states: one (b, seq, H) tensor per layer (already ``[:, :-1]``); weights (L, H), biases (L,),
    mixer (L,). Returns (b, seq).
    """
    per_layer = []
    for layer, inputs in enumerate(states):
        h = inputs.to(weights.dtype)
        normed = F.layer_norm(h, (h.shape[-1],), norm.weight.to(h.dtype), norm.bias.to(h.dtype), norm.eps)
        per_layer.append(torch.relu(normed @ weights[layer] + biases[layer]).unsqueeze(-1))
    concatenated = torch.cat(per_layer, dim=-1)  # (b, seq, L)
    return torch.relu(concatenated @ mixer)


def sparse_loss(
    policy_logits: torch.Tensor,
    reference_logits: torch.Tensor,
    labels: torch.Tensor,
    reward_mask: torch.Tensor,
    kl_mask: torch.Tensor,
    beta: float,
    l1_u: float,
    l1_d: float,
    common: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``SparseTrainer.get_batch_loss_metrics`` on a concatenated batch (chosen rows, then rejected).

    reward_mask, kl_mask: (2B, seq−1), the head's outputs on ``states[:, :-1]``.
    Returns per-pair losses, chosen rewards, rejected rewards (as logged).
    """
    if common:  # "make up for double adding (from u and d)"
        l1_u, l1_d = l1_u / 2.0, l1_d / 2.0
    half = labels.shape[0] // 2
    logits, loss_mask, labels = shifted(policy_logits, labels)
    reference_logits = reference_logits[:, :-1, :]
    policy_vocab = logits.log_softmax(-1)
    reference_vocab = reference_logits.log_softmax(-1)
    policy_token = torch.gather(policy_vocab, 2, labels.unsqueeze(2)).squeeze(2)
    reference_token = torch.gather(reference_vocab, 2, labels.unsqueeze(2)).squeeze(2)
    reward = reward_mask * (policy_token - reference_token)
    reward = (reward * loss_mask).sum(-1)
    u = reward[:half] - reward[half:]
    token_kl = (reference_logits.softmax(-1) * (policy_vocab - reference_vocab)).sum(-1)  # = −KL
    token_kl = ((kl_mask * token_kl) * loss_mask).sum(-1)
    d = token_kl[:half] - token_kl[half:]
    losses = -F.logsigmoid(beta * (u - d))
    norm_u = torch.linalg.vector_norm(reward_mask * loss_mask, ord=1, dim=-1)
    norm_d = torch.linalg.vector_norm(kl_mask * loss_mask, ord=1, dim=-1)
    if l1_u != 0:
        losses = losses + l1_u * (norm_u[:half] + norm_u[half:])
    if l1_d != 0:
        losses = losses + l1_d * (norm_d[:half] + norm_d[half:])
    rewards = beta * (reward + token_kl)
    return losses, rewards[:half], rewards[half:]


def zn_rescale(activations: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """``MAPOTrainer.apply_activation_mapping("zn_rescale")``: mean over the hidden dimension, z-normalise
    over each row's completion tokens (unbiased std), rescale to [0, 1] by the row's min and max, zero
    off the completion. activations (b, seq, d) → (b, seq)."""
    reduced = activations.mean(-1)
    rows = []
    for row in range(reduced.shape[0]):
        keep = loss_mask[row]
        values = reduced[row]
        mean = values[keep].sum() / keep.sum()
        z = (values - mean) / (values[keep].std() + 1e-12)
        low, high = z[keep].min(), z[keep].max()
        rows.append((z - low) / (high - low) * keep)
    return torch.stack(rows)


def mapo_mask(activations_by_type: dict[str, list[torch.Tensor]], loss_mask: torch.Tensor) -> torch.Tensor:
    """The MaPO mask of ``concatenated_forward(run_hooks=True)``: each captured tensor (b, seq, d) at
    positions ``[:, :-1]``, mapped by :func:`zn_rescale`, averaged within its hook type, then the types
    averaged. loss_mask (b, seq−1)."""
    per_type = []
    for tensors in activations_by_type.values():
        mapped = [zn_rescale(t[:, :-1], loss_mask).unsqueeze(-1) for t in tensors]
        per_type.append(torch.cat(mapped, dim=-1).mean(-1, keepdim=True))
    return torch.cat(per_type, dim=-1).mean(-1)


def mapo_loss(
    policy_logits: torch.Tensor,
    reference_logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``MAPOTrainer.mapo_loss`` with its inputs: one mask (2B, seq−1) on both terms, no L1."""
    return sparse_loss(policy_logits, reference_logits, labels, mask, mask, beta, 0.0, 0.0, common=True)
