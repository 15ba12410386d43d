"""SparsePO's masks: activation masks and the learned head by hand, and on Llama and GPT-2 models."""

from __future__ import annotations

import pytest
import torch
from trainer_helpers import examples

from trainers.masks import MaskHead, activation_mask, captured_activations


def test_activation_mask_rescales_each_hook_to_unit_range_and_averages_by_hand():
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    first = torch.tensor([[9.0, 1.0, 3.0, 2.0, -9.0]])  # completion scores 1, 3, 2 → 0, 1, 0.5
    second = torch.tensor([[0.0, 4.0, 4.0, 0.0, 0.0]])  # 4, 4, 0 → 1, 1, 0
    result = activation_mask([first, second], mask)[0].tolist()
    assert result == pytest.approx([0.0, 0.5, 1.0, 0.25, 0.0])
    flat = activation_mask([torch.full((1, 5), 2.0)], mask)[0].tolist()
    assert flat == [0.0, 1.0, 1.0, 1.0, 0.0]  # all scores equal: every token counts fully


def test_mask_head_by_hand_on_one_layer():
    head = MaskHead(num_layers=1, hidden_size=2, heads=1, dropout=0.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[[1.0, 0.0]]]))
        head.bias.fill_(0.5)
        head.mixer.fill_(2.0)
    # LayerNorm of (3, 1) is (1, −1) (up to eps); of (1, 3) is (−1, 1).
    states = torch.tensor([[[3.0, 1.0], [1.0, 3.0]]])
    masks = head([states])
    assert masks.shape == (1, 1, 2)
    assert masks[0, 0].tolist() == pytest.approx([2.0 * 1.5, 0.0], abs=1e-4)  # ReLU(−1 + 0.5) = 0 exactly
    assert masks[0, 0, 1].item() == 0.0


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_masks_on_real_architectures_and_gradients_reach_the_head(family, tiny_llama, tiny_gpt2):
    from accelerate import Accelerator

    from trainers.config import SparsePOConfig, TrainConfig, TrainingConfig
    from trainers.data import TruncationPolicy, tokenize_examples
    from trainers.engine import Engine
    from trainers.forward import transformer_layers
    from trainers.methods import build_method

    model, tokenizer = tiny_llama if family == "llama" else tiny_gpt2
    pairs = tokenize_examples(examples(4), tokenizer, TruncationPolicy(256, 128))
    layers = len(transformer_layers(model))
    hooks = ["mlp", "attention", "residual", "logits"]
    with captured_activations(model, hooks, None) as scores, torch.no_grad():
        model(input_ids=torch.tensor([pairs[0].prompt_ids]))
    assert len(scores) == 3 * layers + 1

    for settings in (SparsePOConfig(heads="independent"), SparsePOConfig(mask="activation", hooks=hooks)):
        config = TrainConfig(settings, TrainingConfig(per_device_batch_size=4))
        method = build_method(settings, model.config)
        reference = type(model)(model.config).eval()  # another model: the log-ratios are not zero
        reference.load_state_dict(model.state_dict())
        with torch.no_grad():
            for parameter in reference.parameters():
                parameter.add_(0.01 * torch.randn_like(parameter))
        engine = Engine(
            config,
            method,
            Accelerator(cpu=True),
            model,
            reference,
            pairs,
            tokenizer.pad_token_id,
            tokenizer.eos_token_id,
        )
        out, tensors = engine.micro_step([0, 1, 2, 3])
        completion = tensors.mask.bool()
        for kind in ("mask_u", "mask_d"):
            values = out.token_scores[kind]
            assert (values >= 0).all()
            if settings.mask == "activation":  # an average of [0, 1]-rescaled scores, zero off the completion
                assert values[completion].max() <= 1.0 and (values[~completion] == 0).all()
        if settings.mask == "learned":
            out.result.losses.mean().backward()
            for name, parameter in method.head.named_parameters():
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
            assert not torch.equal(out.token_scores["mask_u"], out.token_scores["mask_d"])
