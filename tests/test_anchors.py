"""TI-DPO anchors continue their pair's cached prompt: the same log-ratios and gradients as a forward
of prompt + anchor of their own (the path taken where a model's cache cannot be reused)."""

from __future__ import annotations

import copy

import pytest
import torch
from trainer_helpers import examples

import tokenpo.trainers.engine as engine_module


def _anchor_step(model, tokenizer, reuse: bool, monkeypatch):
    from accelerate import Accelerator

    from tokenpo.trainers.config import TIDPOConfig, TrainConfig, TrainingConfig
    from tokenpo.trainers.data import TruncationPolicy, tokenize_examples
    from tokenpo.trainers.engine import Engine
    from tokenpo.trainers.forward import disable_dropout
    from tokenpo.trainers.methods import build_method

    pairs = tokenize_examples(examples(4), tokenizer, TruncationPolicy(256, 128))
    settings = TIDPOConfig(importance_source="policy", anchor_max_new_tokens=5, gamma=1.0, triplet_margin=10.0)
    method = build_method(settings, model.config)
    policy = copy.deepcopy(model).train()
    disable_dropout(policy)  # as load_policy does: both paths must see the same network
    reference = copy.deepcopy(model).eval()
    engine = Engine(
        TrainConfig(settings, TrainingConfig(per_device_batch_size=4)),
        method,
        Accelerator(cpu=True),
        policy,
        reference,
        pairs,
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
    )
    engine.precompute()  # the reference log-probs TI-DPO reads from its cache
    generator = torch.Generator().manual_seed(0)
    for index in (0, 2, 3):  # pair 1 has no anchor; anchors of different lengths
        length = 2 + index
        completion = torch.randint(5, 200, (length,), generator=generator).tolist()
        logps = (-torch.rand(length, generator=generator) * 3).tolist()
        method.anchors.store([index], [completion], [logps], step=0)
    if not reuse:
        monkeypatch.setattr(engine_module, "reusable_prefix_cache", lambda cache: False)
    out, tensors = engine.micro_step([0, 1, 2, 3])
    out.result.losses.sum().backward()
    grads = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
    monkeypatch.undo()
    return tensors, out, grads


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_anchors_from_the_cached_prompt_equal_a_forward_of_their_own(family, tiny_llama, tiny_gpt2, monkeypatch):
    model, tokenizer = tiny_llama if family == "llama" else tiny_gpt2
    cached, cached_out, cached_grads = _anchor_step(model, tokenizer, True, monkeypatch)
    alone, alone_out, alone_grads = _anchor_step(model, tokenizer, False, monkeypatch)
    assert cached.anchor_pairs == alone.anchor_pairs == [0, 2, 3]
    assert cached.anchor_mask.sum(-1).tolist() == alone.anchor_mask.sum(-1).tolist() == [2.0, 4.0, 5.0]
    for ours, theirs, mask in zip(cached.anchor_logratios, alone.anchor_logratios, alone.anchor_mask, strict=True):
        kept = mask.bool()
        torch.testing.assert_close(ours[: int(mask.sum())], theirs[kept], rtol=0, atol=1e-5)
    assert (cached_out.result.losses > alone_out.result.losses.new_zeros(())).any()  # the triplet term is active
    torch.testing.assert_close(cached_out.result.losses, alone_out.result.losses, rtol=0, atol=1e-5)
    assert cached_grads.keys() == alone_grads.keys()
    for name, grad in alone_grads.items():
        # Same sums in another order (the prompt's keys and values are reused, not recomputed): float32
        # rounding, relative to the gradient's scale.
        assert (cached_grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name
