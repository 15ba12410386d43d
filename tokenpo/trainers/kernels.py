"""Autograd kernels behind the token log-probs and token KL of :mod:`tokenpo.trainers.losses`.

Each kernel walks the vocabulary block by block of positions, with a hand-written backward, so a
step never holds a float32 copy of the (N, T, V) logits: memory stays at one block. The formulas
they compute are in the docstrings of :func:`tokenpo.trainers.losses.token_logps` and
:func:`tokenpo.trainers.losses.token_logps_and_kl`; the derivations of the gradients are here.
"""

from __future__ import annotations

import torch


def _blocks(rows: int, size: int) -> range:
    return range(0, rows, size)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision logits; float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


class TargetLogProbs(torch.autograd.Function):
    """log softmax(logits)[target] = logit[target] − logsumexp(logits), block by block.

    Saves only the logits it was given (already alive for the backward of the LM head) and one
    logsumexp per position, never a float32 copy of the logits: memory stays at one block.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, block: int) -> torch.Tensor:
        flat = logits.reshape(-1, logits.shape[-1])
        flat_targets = targets.reshape(-1, 1)
        dtype = _accumulation_dtype(logits.dtype)
        out = torch.empty(flat.shape[0], dtype=dtype, device=logits.device)
        lse = torch.empty_like(out)
        for start in _blocks(flat.shape[0], block):
            rows = slice(start, start + block)
            values = flat[rows].to(dtype)
            lse[rows] = torch.logsumexp(values, dim=-1)
            out[rows] = values.gather(-1, flat_targets[rows]).squeeze(-1) - lse[rows]
        ctx.save_for_backward(logits, targets, lse)
        ctx.block = block
        return out.view(targets.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        flat = logits.reshape(-1, logits.shape[-1])
        flat_targets = targets.reshape(-1, 1)
        flat_grad = grad.reshape(-1, 1).to(lse.dtype)
        grad_logits = torch.empty_like(flat)
        for start in _blocks(flat.shape[0], ctx.block):
            rows = slice(start, start + ctx.block)
            block_grad = torch.exp(flat[rows].to(lse.dtype) - lse[rows, None]).mul_(-flat_grad[rows])
            block_grad.scatter_add_(-1, flat_targets[rows], flat_grad[rows])
            grad_logits[rows] = block_grad
        return grad_logits.view_as(logits), None, None


class LogpsAndKL(torch.autograd.Function):
    """Policy log-probs, reference log-probs and KL(ref ‖ policy) in one pass per block of positions.

    With lse = logsumexp(z) of each model's logits z at a position and y_t its target token:
    log π(y_t) = z(y_t) − lse;  KL_t = Σ_v p_ref(v)·(z_ref(v) − z_θ(v)) − lse_ref + lse_θ.
    For upstream gradients a_t (policy log-probs) and b_t (KL):
    ∂/∂z_θ = a_t·(onehot(y_t) − softmax(z_θ)) + b_t·(softmax(z_θ) − p_ref)
           = (b_t − a_t)·softmax(z_θ) − b_t·p_ref + a_t·onehot(y_t).
    Computed apart (:func:`token_logps` twice and :func:`token_kl`), each logsumexp is taken twice
    and the backward writes two full-vocabulary gradients that autograd then adds.
    """

    @staticmethod
    def forward(ctx, policy_logits, reference_logits, targets, block):
        vocab = policy_logits.shape[-1]
        policy = policy_logits.reshape(-1, vocab)
        reference = reference_logits.reshape(-1, vocab)
        flat_targets = targets.reshape(-1, 1)
        dtype = _accumulation_dtype(policy_logits.dtype)
        rows_total = policy.shape[0]
        policy_logps, reference_logps, kl, lse_policy, lse_reference = (
            torch.empty(rows_total, dtype=dtype, device=policy.device) for _ in range(5)
        )
        for start in _blocks(rows_total, block):
            rows = slice(start, start + block)
            z_reference = reference[rows].to(dtype, copy=True)
            z_policy = policy[rows].to(dtype, copy=True)
            lse_reference[rows] = torch.logsumexp(z_reference, dim=-1)
            lse_policy[rows] = torch.logsumexp(z_policy, dim=-1)
            policy_logps[rows] = z_policy.gather(-1, flat_targets[rows]).squeeze(-1) - lse_policy[rows]
            reference_logps[rows] = z_reference.gather(-1, flat_targets[rows]).squeeze(-1) - lse_reference[rows]
            difference = z_policy.neg_().add_(z_reference)  # z_ref − z_θ
            p_reference = z_reference.sub_(lse_reference[rows, None]).exp_()
            kl[rows] = torch.linalg.vecdot(p_reference, difference) - lse_reference[rows] + lse_policy[rows]
        ctx.save_for_backward(policy_logits, reference_logits, targets, lse_policy, lse_reference)
        ctx.block = block
        outputs = tuple(values.view(targets.shape) for values in (policy_logps, reference_logps, kl))
        ctx.mark_non_differentiable(outputs[1])
        return outputs

    @staticmethod
    def backward(ctx, grad_logps, _grad_reference, grad_kl):
        policy_logits, reference_logits, targets, lse_policy, lse_reference = ctx.saved_tensors
        vocab = policy_logits.shape[-1]
        policy = policy_logits.reshape(-1, vocab)
        reference = reference_logits.reshape(-1, vocab)
        flat_targets = targets.reshape(-1, 1)
        dtype = lse_policy.dtype
        a = grad_logps.reshape(-1, 1).to(dtype)
        b = grad_kl.reshape(-1, 1).to(dtype)
        grad_policy = torch.empty_like(policy)
        for start in _blocks(policy.shape[0], ctx.block):
            rows = slice(start, start + ctx.block)
            p_policy = policy[rows].to(dtype, copy=True).sub_(lse_policy[rows, None]).exp_()
            p_reference = reference[rows].to(dtype, copy=True).sub_(lse_reference[rows, None]).exp_()
            block_grad = p_policy.mul_(b[rows] - a[rows]).sub_(p_reference.mul_(b[rows]))
            block_grad.scatter_add_(-1, flat_targets[rows], a[rows])
            grad_policy[rows] = block_grad
        return grad_policy.view_as(policy_logits), None, None, None
