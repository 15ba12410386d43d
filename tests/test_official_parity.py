"""SparsePO and TI-DPO against independent transcriptions of their authors' released code.

The oracles (``official_sparsepo``, ``official_tidpo``) work on full-sequence logits and labels
with the official conventions and use none of our functions; our engine runs its own path (kept
logits, blockwise kernels, the completion grid). Float64 tiny models make the comparison exact
to rounding.
"""

from __future__ import annotations

import official_sparsepo as sparse_oracle
import official_tidpo as tidpo_oracle
import pytest
import torch
from trainer_helpers import examples

from tokenpo.trainers.activations import activation_mask
from tokenpo.trainers.config import SparsePOConfig, TIDPOConfig, TrainConfig, TrainingConfig
from tokenpo.trainers.data import TruncationPolicy, collate_sequences, tokenize_examples
from tokenpo.trainers.forward import CompletionGrid
from tokenpo.trainers.methods import build_method

TOLERANCE = {"rtol": 0, "atol": 1e-9}


@pytest.fixture
def tiny_pair_models(tiny_llama):
    """A float64 policy and a perturbed float64 reference (log-ratios and KL are not zero)."""
    model, tokenizer = tiny_llama
    policy = type(model)(model.config).double().eval()
    policy.load_state_dict(model.state_dict())
    reference = type(model)(model.config).double().eval()
    reference.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    pairs = tokenize_examples(examples(4), tokenizer, TruncationPolicy(256, 128))
    return policy, reference, pairs, tokenizer


def _engine(settings, policy, reference, pairs, tokenizer):
    from accelerate import Accelerator

    from tokenpo.trainers.engine import Engine

    method = build_method(settings, policy.config)
    config = TrainConfig(settings, TrainingConfig(per_device_batch_size=len(pairs)))
    engine = Engine(
        config, method, Accelerator(cpu=True), policy, reference, pairs, tokenizer.pad_token_id, tokenizer.eos_token_id
    )
    return engine, method


def _batch(pairs, tokenizer):
    """Chosen rows then rejected rows, right-padded, with labels −100 off the completion."""
    rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    batch = collate_sequences(rows, tokenizer.pad_token_id)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, sparse_oracle.IGNORE)
    return batch, labels


@pytest.mark.parametrize("heads", ["common", "independent"])
def test_learned_sparsepo_loss_rewards_and_mask_alignment_equal_the_official_code(tiny_pair_models, heads):
    policy, reference, pairs, tokenizer = tiny_pair_models
    # Our "average" initialisation gives masks of order 1 (the official one starts near 0), so that
    # every term of the loss weighs in the comparison; the formulas do not depend on the initialisation.
    settings = SparsePOConfig(
        beta=0.5, heads=heads, lambda_u=0.01, lambda_d=0.03, mask_dropout=0.0, head_init="average"
    )
    engine, method = _engine(settings, policy, reference, pairs, tokenizer)
    method.head.double()
    out, _ = engine.micro_step(list(range(len(pairs))))

    batch, labels = _batch(pairs, tokenizer)
    with torch.no_grad():
        policy_logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ref = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    states = [h[:, :-1] for h in ref.hidden_states[1:]]  # the official mask input
    head = method.head
    masks = [
        sparse_oracle.simple_mask_all_layers(states, head.norm, head.weight[e], head.bias[e], head.mixer[e])
        for e in range(head.heads)
    ]
    losses, chosen, rejected = sparse_oracle.sparse_loss(
        policy_logits, ref.logits, labels, masks[0], masks[-1], 0.5, 0.01, 0.03, common=heads == "common"
    )
    torch.testing.assert_close(out.result.losses.detach(), losses, **TOLERANCE)
    torch.testing.assert_close(out.result.chosen_rewards, chosen, **TOLERANCE)
    torch.testing.assert_close(out.result.rejected_rewards, rejected, **TOLERANCE)
    # Masks differ token by token between positions t−1 and t: the comparison above pins the alignment.
    shifted = SparsePOConfig(
        beta=0.5,
        heads=heads,
        lambda_u=0.01,
        lambda_d=0.03,
        mask_dropout=0.0,
        head_init="average",
        mask_position="token",
    )
    engine, token_method = _engine(shifted, policy, reference, pairs, tokenizer)
    token_method.head.load_state_dict(head.state_dict())
    token_method.head.double()
    other, _ = engine.micro_step(list(range(len(pairs))))
    assert (other.result.losses.detach() - losses).abs().max() > 1e-4


def test_mapo_mask_aggregation_and_alignment_equal_the_official_code():
    torch.manual_seed(3)
    input_ids = torch.randint(0, 50, (4, 9))
    completion = torch.tensor(
        [
            [0, 0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 1, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 1, 1, 1, 1],
        ]
    )
    labels = input_ids.masked_fill(completion == 0, sparse_oracle.IGNORE)
    _, loss_mask, _ = sparse_oracle.shifted(torch.zeros(4, 9, 1), labels)
    activations = {  # types with different numbers of tensors: averaging within type, then across, matters
        "mlp": [torch.randn(4, 9, 6, dtype=torch.float64) for _ in range(2)],
        "attention": [torch.randn(4, 9, 8, dtype=torch.float64) for _ in range(5)],
        "residual": [torch.randn(4, 9, 6, dtype=torch.float64)],
        "logits": [torch.randn(4, 9, 11, dtype=torch.float64)],
    }
    official = sparse_oracle.mapo_mask(activations, loss_mask)  # (4, 8): index i is the label at i + 1

    grid = CompletionGrid.of(input_ids, completion)
    scores = {kind: [grid.take(t.mean(-1), "prediction") for t in tensors] for kind, tensors in activations.items()}
    ours = activation_mask(scores, grid.mask, "by-type")
    # Grid column j is the token at position start + j; the official column i is the label at i + 1.
    # Our last column is the grid's padding (no token): zero.
    torch.testing.assert_close(ours[:, :-1], official[:, grid.start - 1 :].float(), rtol=0, atol=1e-6)
    assert (ours[:, -1] == 0).all()
    flat = activation_mask(scores, grid.mask, "flat")
    assert (flat - ours).abs().max() > 1e-3  # the by-type average is not the flat one here


def test_mapo_loss_and_rewards_equal_the_official_code_given_the_mask(tiny_pair_models):
    policy, reference, pairs, tokenizer = tiny_pair_models
    settings = SparsePOConfig(beta=0.8, mask="activation")
    engine, _ = _engine(settings, policy, reference, pairs, tokenizer)
    out, tensors = engine.micro_step(list(range(len(pairs))))

    batch, labels = _batch(pairs, tokenizer)
    with torch.no_grad():
        policy_logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        reference_logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    grid = CompletionGrid.of(batch["input_ids"], batch["completion_mask"])
    mask = torch.zeros(labels.shape[0], labels.shape[1] - 1, dtype=torch.float64)
    mask[:, grid.start - 1 :] = out.token_scores["mask_u"][:, :-1].double()  # ours, in the official layout
    losses, chosen, rejected = sparse_oracle.mapo_loss(policy_logits, reference_logits, labels, mask, 0.8)
    torch.testing.assert_close(out.result.losses.detach(), losses, **TOLERANCE)
    torch.testing.assert_close(out.result.chosen_rewards, chosen, **TOLERANCE)
    torch.testing.assert_close(out.result.rejected_rewards, rejected, **TOLERANCE)
    values = out.token_scores["mask_u"][tensors.mask.bool()]
    assert 0.0 <= values.min() < values.max() <= 1.0  # averages of scores rescaled to [0, 1]


@pytest.mark.parametrize("source", ["policy", "reference"])
def test_tidpo_weights_loss_and_rewards_equal_the_released_code(tiny_pair_models, source):
    policy, reference, pairs, tokenizer = tiny_pair_models
    settings = TIDPOConfig(gamma=0.0, importance_source=source)  # the released defaults otherwise
    engine, _ = _engine(settings, policy, reference, pairs, tokenizer)
    if source == "reference":
        engine.precompute()
    out, _ = engine.micro_step(list(range(len(pairs))))

    batch, labels = _batch(pairs, tokenizer)
    attributed = policy if source == "policy" else reference
    importances = tidpo_oracle.attribution(attributed, batch["input_ids"], batch["attention_mask"])
    weights = tidpo_oracle.weight_matrix(importances.detach(), batch["attention_mask"], 0.7, 4.0)
    with torch.no_grad():
        policy_logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        reference_logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses, chosen, rejected = tidpo_oracle.weighted_tdpo(policy_logits, reference_logits, labels, weights, 0.1, 0.5)
    grid = CompletionGrid.of(batch["input_ids"], batch["completion_mask"])
    torch.testing.assert_close(
        out.token_scores["weight"].double(), (grid.take(weights) * grid.mask).double(), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(out.result.losses.detach().double(), losses, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.result.chosen_rewards.double(), chosen, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.result.rejected_rewards.double(), rejected, rtol=0, atol=1e-6)


def test_tidpo_pairwise_triplet_equals_the_released_code_by_hand():
    from tokenpo.trainers import losses as L

    # Pair 1: ‖d − b‖² over 2 tokens = 0.25 + 4 = 4.25; ‖d − c‖² over 3 tokens = 0.25 + 0 + 9 = 9.25.
    # Pair 2: ‖d − b‖² over 1 token = 9; ‖d − c‖² over 1 token = 0.25.
    anchor = [[0.5, -1.0, 2.0], [1.0]]
    chosen = [[0.0, 1.0], [-2.0, 0.0, 0.0]]
    rejected = [[1.0, -1.0, 5.0], [1.5, 4.0]]
    expected = tidpo_oracle.triplet(anchor, chosen, rejected, margin=0.01)
    assert expected == pytest.approx([0.0, 9.0 - 0.25 + 0.01])

    def grid(rows, width):
        values = torch.zeros(len(rows), width)
        mask = torch.zeros(len(rows), width)
        for i, row in enumerate(rows):
            values[i, 1 : 1 + len(row)] = torch.tensor(row)  # completions start after a prompt column
            mask[i, 1 : 1 + len(row)] = 1
        return values, mask

    anchor_values, anchor_mask = grid(anchor, 4)
    chosen_values, chosen_mask = grid(chosen, 5)
    rejected_values, rejected_mask = grid(rejected, 5)
    sides = (chosen_values, chosen_mask, rejected_values, rejected_mask)
    ours = L.triplet_loss(anchor_values, anchor_mask, *sides, margin=0.01, alignment="pairwise")
    assert ours.tolist() == pytest.approx(expected, abs=1e-6)
    # The truncate variant cuts ‖d − c‖² of pair 1 at the 2 tokens all three have: 4.25 − 0.25 + 0.01.
    truncated = L.triplet_loss(anchor_values, anchor_mask, *sides, margin=0.01, alignment="truncate")
    assert truncated.tolist() == pytest.approx([4.01, 8.76], abs=1e-6)
