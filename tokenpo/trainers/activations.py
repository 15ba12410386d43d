"""SparsePO's activation hook points ("MaPO", ``activation_hook="all"``) on any ``transformers`` causal LM.

The official method patches the modeling files of four architectures to expose its hook points; here
the same points are read with PyTorch forward hooks on standard submodules (found by their usual
names), so the frozen model runs unchanged. Each captured tensor is reduced at once to one score per
position, its mean over the hidden dimension (over heads × head_dim for per-head tensors), so a
forward keeps only (N, L) scores per point and layer.

Hook points by type (``HOOK_POINTS``), per decoder block unless said otherwise:

- ``mlp.post_act``: the MLP's post-activation hidden, i.e. the input of its output projection
  (``down_proj``, ``c_proj``, ``dense_4h_to_h``, ``fc2``, ``fc_out``, ``w2``). For gated MLPs
  (Llama, Mistral, Qwen, Gemma) that input is act(gate(x))·up(x): the official GPT-style MLPs have
  no gate, and this is the tensor that plays the role of their act(fc(x)).
- ``attention.q``/``k``/``v``: the projections before rotary (``q_proj``/``k_proj``/``v_proj``
  outputs, or the parts of a fused ``c_attn``/``qkv_proj``/``query_key_value`` output);
  ``attention.q_rotary``/``k_rotary`` (official ``post_rota_emb_q``/``_k``): q and k after the
  rotary embedding (see ``_Rotary``); ``attention.output`` (official ``v_out``): the heads' output
  before the output projection, i.e. that projection's input (``o_proj``, ``c_proj``, ``dense``).
- ``residual.input_norm`` (official ``input_ln_attn``): the input norm's output; ``attention_delta``
  (``delta_attn``): the attention module's output; ``post_attention`` (``post_attn``): the residual
  stream after adding attention, i.e. the pre-MLP norm's input, absent in parallel-residual blocks;
  ``post_attention_norm`` (``post_ln_attn``): that norm's output; ``mlp_delta`` (``delta_mlp``): the
  MLP module's output; ``block_output`` (``post_mlp``). Model-level: ``residual.embeddings``
  (``post_emb``): the first block's input; ``residual.final_norm`` (``post_ln_f``): the final norm's
  output (fallback: the LM head's input).
- ``logits.logits`` (model-level): the LM head's output, averaged over the vocabulary.

Points an architecture lacks are reported in ``ActivationCapture.missing``, never an error. How each
point is found in an architecture (submodule names, fused q/k/v, rotary) is in
:mod:`tokenpo.trainers.hookpoints`; this module says what is captured and makes the mask of it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from tokenpo.trainers.hooknames import resolve_points
from tokenpo.trainers.hookpoints import ActivationCapture, Hooks, unwrapped


@contextlib.contextmanager
def captured_activations(
    model: nn.Module, points: Sequence[str], layers: Sequence[int] | None
) -> Iterator[ActivationCapture]:
    """Hook ``points`` (types or ``"type.point"`` names, see ``resolve_points``) of ``model``.

    Inside the block, each forward appends, per point and chosen layer, the score
    s[n, t] = mean_d a[n, t, d] of the captured activation a (per-head tensors: mean over heads and
    head_dim), as float32 without gradient. Scores of tensors shorter than the sequence (logits kept
    with ``logits_to_keep``) are returned as they are: the caller aligns positions.

    Args:
        model: a causal LM, possibly wrapped by peft (hooks sit on the modules inside, so they fire
            with adapters disabled too) or DDP.
        points: what to capture.
        layers: decoder blocks for the per-layer points; None for all, negative indices count from
            the end. Model-level points (``MODEL_LEVEL_POINTS``) are captured whenever selected.

    Hooks are removed on exit, exceptions included. Capture a forward with gradients disabled: with
    gradient checkpointing, a backward would recompute blocks and fire their hooks again.
    """
    hooks = Hooks(resolve_points(points))
    try:
        hooks.register(unwrapped(model), layers)
        yield hooks.capture
    finally:
        hooks.remove()


def activation_mask(
    scores: Mapping[str, Sequence[torch.Tensor]],
    mask: torch.Tensor,
    aggregation: Literal["by-type", "flat"] = "by-type",
) -> torch.Tensor:
    """MaPO's mask from per-type scores already on the completion grid.

    Each (N, K) score s is rescaled per row over the row's completion tokens (``mask``, (N, K)):
    r = (s − min) / (max − min). The official method z-normalises then min-max rescales; min-max is
    invariant to that positive affine map, so it is applied directly. One deviation: a row whose
    completion scores are all equal gets r = 1 there (the official division gives NaN).

    ``"by-type"`` (the official aggregation): m = mean over types present of (mean of r within the
    type); ``"flat"``: m = mean of r over all tensors regardless of type. Types with no tensors are
    skipped. Returns m (N, K) float32, detached, zero outside the completion.
    """
    if aggregation not in ("by-type", "flat"):
        raise ValueError(f"unknown activation mask aggregation {aggregation!r}: expected 'by-type' or 'flat'")
    groups = [list(tensors) for tensors in scores.values() if len(tensors) > 0]
    if not groups:
        raise ValueError("no activation scores to build a mask from (no selected hook point was captured)")
    if aggregation == "flat":
        groups = [[tensor for group in groups for tensor in group]]
    valid = mask.bool()
    total = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    for group in groups:
        for score in group:
            if score.shape != mask.shape:
                raise ValueError(f"activation score of shape {tuple(score.shape)} for a mask of {tuple(mask.shape)}")
            total = total + _rescaled(score.detach().float(), valid) / len(group)
    return (total / len(groups) * valid).detach()


def _rescaled(score: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    low = score.masked_fill(~valid, math.inf).amin(dim=-1, keepdim=True)
    high = score.masked_fill(~valid, -math.inf).amax(dim=-1, keepdim=True)
    spread = high - low
    # spread is 0 for constant rows and -inf for rows without completion tokens (zeroed by the caller).
    return torch.where(spread > 0, (score - low) / spread.clamp(min=1e-30), torch.ones_like(score))
