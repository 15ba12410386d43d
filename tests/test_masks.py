"""SparsePO's learned mask head by hand, its two initialisations, and masks on Llama and GPT-2 models."""

from __future__ import annotations

import pytest
import torch
from trainer_helpers import examples

from tokenpo.trainers.masks import MaskHead


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
    with torch.no_grad():
        head.mixer.fill_(-2.0)  # a negative mixer: the final ReLU zeroes the token
    assert head([states])[0, 0, 0].item() == 0.0


def test_official_initialisation_is_the_models_init_weights_and_ours_starts_at_the_layer_average():
    torch.manual_seed(0)
    official = MaskHead(num_layers=30, hidden_size=576, heads=2, init="official", initializer_range=0.04)
    assert official.weight.std().item() == pytest.approx(0.04, rel=0.02)
    assert official.mixer.std().item() == pytest.approx(0.04, rel=0.3)
    assert (official.bias == 0).all() and (official.norm.weight == 1).all() and (official.norm.bias == 0).all()
    assert (official.mixer < 0).any() and (official.mixer > 0).any()  # both signs, as N(0, σ²) draws
    ours = MaskHead(num_layers=30, hidden_size=576, heads=1, init="average")
    assert (ours.mixer == 1 / 30).all()
    assert ours.weight.abs().max().item() <= 1 / 576**0.5


def test_head_parameter_groups_decay_weights_only():
    head = MaskHead(num_layers=3, hidden_size=4, heads=1)
    decayed, plain = head.parameter_groups(0.01)
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(head.weight), id(head.mixer)}
    assert {id(p) for p in plain["params"]} == {id(head.bias), id(head.norm.weight), id(head.norm.bias)}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_masks_on_real_architectures_and_gradients_reach_the_head(family, tiny_llama, tiny_gpt2):
    from accelerate import Accelerator

    from tokenpo.trainers.config import SparsePOConfig, TrainConfig, TrainingConfig
    from tokenpo.trainers.data import TruncationPolicy, tokenize_examples
    from tokenpo.trainers.engine import Engine
    from tokenpo.trainers.methods import build_method

    model, tokenizer = tiny_llama if family == "llama" else tiny_gpt2
    pairs = tokenize_examples(examples(4), tokenizer, TruncationPolicy(256, 128))
    for settings in (
        SparsePOConfig(heads="independent", head_init="average", mask_dropout=0.0),
        SparsePOConfig(mask="activation"),
    ):
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
                assert set(tensors.activation_scores) == {"mlp", "attention", "residual", "logits"}
        if settings.mask == "learned":
            out.result.losses.mean().backward()
            for name, parameter in method.head.named_parameters():
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
            assert not torch.equal(out.token_scores["mask_u"], out.token_scores["mask_d"])
