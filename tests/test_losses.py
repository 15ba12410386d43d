"""The losses against values computed by hand, special cases that reduce exactly, and autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tokenpo.trainers import losses as L


def softplus(x: float) -> float:
    """−log σ(x)."""
    return math.log1p(math.exp(-x))


def test_token_logps_equals_log_softmax_gather_values_and_gradients():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (3, 5))
    weights = torch.randn(3, 5, dtype=torch.float64)
    ours = L.token_logps(logits, targets, block=4)  # 15 positions in blocks of 4: a ragged last block
    expected = F.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), logits)
    torch.testing.assert_close(grad_ours, grad_expected, rtol=0, atol=1e-12)


def test_token_logps_in_bfloat16_keeps_float32_precision_of_the_logsumexp():
    logits = torch.tensor([[[2.0, 0.0, -1.0]]], dtype=torch.bfloat16)
    value = L.token_logps(logits, torch.tensor([[0]])).item()
    assert value == pytest.approx(2.0 - math.log(math.exp(2) + 1 + math.exp(-1)), abs=1e-6)


def test_token_kl_matches_the_definition_and_its_gradient():
    torch.manual_seed(1)
    policy = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    reference = torch.randn(2, 3, 7, dtype=torch.float64)
    ours = L.token_kl(policy, reference, block=4)
    log_ref, log_pol = F.log_softmax(reference, -1), F.log_softmax(policy, -1)
    expected = (log_ref.exp() * (log_ref - log_pol)).sum(-1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    assert (ours >= 0).all()
    (grad_ours,) = torch.autograd.grad(ours.sum(), policy)
    (grad_expected,) = torch.autograd.grad(expected.sum(), policy)
    torch.testing.assert_close(grad_ours, grad_expected, rtol=0, atol=1e-12)
    assert L.token_kl(reference, reference).abs().max() < 1e-6


def test_logps_and_kl_in_one_pass_equal_the_definitions_and_their_gradients():
    torch.manual_seed(2)
    policy = torch.randn(2, 5, 9, dtype=torch.float64, requires_grad=True)
    reference = torch.randn(2, 5, 9, dtype=torch.float64)
    targets = torch.randint(0, 9, (2, 5))
    a, b = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    logps, reference_logps, kl = L.token_logps_and_kl(policy, reference, targets, block=3)  # ragged last block
    log_pol, log_ref = F.log_softmax(policy, -1), F.log_softmax(reference, -1)
    expected_logps = log_pol.gather(-1, targets[..., None]).squeeze(-1)
    expected_kl = (log_ref.exp() * (log_ref - log_pol)).sum(-1)
    torch.testing.assert_close(logps, expected_logps, rtol=0, atol=1e-12)
    torch.testing.assert_close(reference_logps, log_ref.gather(-1, targets[..., None]).squeeze(-1), rtol=0, atol=1e-12)
    torch.testing.assert_close(kl, expected_kl, rtol=0, atol=1e-12)
    assert not reference_logps.requires_grad
    (grad_ours,) = torch.autograd.grad((a * logps + b * kl).sum(), policy)
    (grad_expected,) = torch.autograd.grad((a * expected_logps + b * expected_kl).sum(), policy)
    torch.testing.assert_close(grad_ours, grad_expected, rtol=0, atol=1e-12)


def test_token_kl_by_hand_on_two_tokens():
    # p_ref = (½, ½), p_θ = (σ(1), 1 − σ(1)): KL = ½·log(½/p1) + ½·log(½/p2).
    p1 = 1 / (1 + math.exp(-1))
    expected = 0.5 * math.log(0.5 / p1) + 0.5 * math.log(0.5 / (1 - p1))
    value = L.token_kl(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 0.0]]])).item()
    assert value == pytest.approx(expected, abs=1e-7)


def test_dpo_loss_and_rewards_by_hand():
    # h = 1 − (−1) = 2, β = 0.5 → −log σ(1) = log(1 + e^−1).
    result = L.dpo_loss(torch.tensor([1.0, -1.0]), beta=0.5)
    assert result.losses.item() == pytest.approx(softplus(1.0), abs=1e-7)
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == (0.5, -0.5)


def test_conservative_dpo_by_hand():
    result = L.dpo_loss(torch.tensor([1.0, -1.0]), beta=0.5, label_smoothing=0.1)
    assert result.losses.item() == pytest.approx(0.9 * softplus(1.0) + 0.1 * softplus(-1.0), abs=1e-7)


def test_ipo_loss_is_length_normalised_by_hand():
    # chosen 2 over 4 tokens → 0.5; rejected −1 over 2 tokens → −0.5; h̄ = 1; 1/(2β) = 2 → (1 − 2)² = 1.
    result = L.ipo_loss(torch.tensor([2.0, -1.0]), torch.tensor([4.0, 2.0]), beta=0.25)
    assert result.losses.item() == pytest.approx(1.0)
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == (0.5, -0.25)


def test_tdpo_losses_by_hand_and_the_stop_gradient_of_tdpo2():
    logratios = torch.tensor([1.0, 0.0])
    kl = torch.tensor([0.2, 0.5], requires_grad=True)
    tdpo1 = L.tdpo_loss(logratios, kl, beta=1.0, variant=1)
    assert tdpo1.losses.item() == pytest.approx(softplus(1.0 - (0.5 - 0.2)), abs=1e-6)
    tdpo2 = L.tdpo_loss(logratios, kl, beta=1.0, variant=2, alpha=0.5)
    assert tdpo2.losses.item() == pytest.approx(softplus(1.0 - 0.5 * (0.5 - 0.2)), abs=1e-6)
    (grad,) = torch.autograd.grad(tdpo2.losses.sum(), kl)
    assert grad[0].item() == 0.0 and grad[1].item() > 0  # sg[D(y_w)]: no gradient into the chosen KL
    (grad1,) = torch.autograd.grad(tdpo1.losses.sum(), kl)
    assert grad1[0].item() < 0 < grad1[1].item()
    # Rewards as the official TDPO code logs them: β·(Σ r + Σ KL).
    assert (tdpo2.chosen_rewards.item(), tdpo2.rejected_rewards.item()) == pytest.approx((1.2, 0.5))


def _token_batch(seed: int = 0):
    torch.manual_seed(seed)
    logratios = torch.randn(4, 6)
    kl = torch.rand(4, 6)
    mask = torch.tensor(
        [[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0]]
    ).float()
    return logratios, kl, mask


def test_sparsepo_with_unit_reward_mask_and_no_kl_mask_is_dpo_exactly():
    logratios, kl, mask = _token_batch()
    ones, zeros = torch.ones_like(mask), torch.zeros_like(mask)
    sparse = L.sparsepo_loss(logratios, kl, ones, zeros, mask, beta=0.3)
    dpo = L.dpo_loss(L.masked_sum(logratios, mask), beta=0.3)
    assert torch.equal(sparse.losses, dpo.losses)
    assert torch.equal(sparse.chosen_rewards, dpo.chosen_rewards)


def test_sparsepo_with_unit_masks_is_tdpo1_exactly():
    logratios, kl, mask = _token_batch(1)
    ones = torch.ones_like(mask)
    sparse = L.sparsepo_loss(logratios, kl, ones, ones, mask, beta=0.3)
    tdpo = L.tdpo_loss(L.masked_sum(logratios, mask), L.masked_sum(kl, mask), beta=0.3, variant=1)
    torch.testing.assert_close(sparse.losses, tdpo.losses, rtol=0, atol=1e-7)


def test_sparsepo_l1_penalty_adds_lambda_times_mask_mass():
    logratios, kl, mask = _token_batch(2)
    mask_u = torch.full_like(mask, 0.5)
    mask_d = torch.full_like(mask, 2.0)
    base = L.sparsepo_loss(logratios, kl, mask_u, mask_d, mask, beta=0.1)
    penalised = L.sparsepo_loss(logratios, kl, mask_u, mask_d, mask, beta=0.1, lambda_u=0.01, lambda_d=0.001)
    tokens = mask[:2].sum(-1) + mask[2:].sum(-1)  # chosen + rejected tokens of each pair: (3+2, 4+3)
    torch.testing.assert_close(penalised.losses - base.losses, 0.01 * 0.5 * tokens + 0.001 * 2.0 * tokens)


def test_sparsepo_by_hand_on_one_pair():
    # chosen r = (1, 2), m_u = (1, 0); rejected r = (3,), m_u = (0.5,): u = 1 − 1.5 = −0.5;
    # KL chosen (0.1, 0.2) with m_d (0, 1) → 0.2, rejected KL (0.4,) with m_d (1,) → 0.4: δ = 0.2.
    logratios = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    kl = torch.tensor([[0.1, 0.2], [0.4, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    mask_u = torch.tensor([[1.0, 0.0], [0.5, 7.0]])  # 7 sits on padding: never read
    mask_d = torch.tensor([[0.0, 1.0], [1.0, 7.0]])
    result = L.sparsepo_loss(logratios, kl, mask_u, mask_d, mask, beta=2.0, lambda_u=0.1, lambda_d=0.0)
    assert result.losses.item() == pytest.approx(softplus(2.0 * (-0.5 - 0.2)) + 0.1 * 1.5, abs=1e-6)
    # Rewards as the official code logs them: β·(Σ m_u·r − Σ m_d·KL) = 2·(1 − 0.2), 2·(1.5 − 0.4).
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == pytest.approx((1.6, 2.2))


def test_weighted_dpo_with_unit_weights_is_dpo_and_by_hand_with_weights():
    logratios, _, mask = _token_batch(3)
    ones = torch.ones_like(mask)
    weighted = L.weighted_dpo_loss(logratios, ones, mask, beta=0.2)
    torch.testing.assert_close(weighted.losses, L.dpo_loss(L.masked_sum(logratios, mask), beta=0.2).losses)
    result = L.weighted_dpo_loss(
        torch.tensor([[1.0, 2.0], [4.0, 0.0]]),
        torch.tensor([[0.5, 0.25], [0.5, 0.0]]),
        torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        beta=1.0,
    )
    assert result.losses.item() == pytest.approx(softplus(1.0 - 2.0), abs=1e-6)


def test_weighted_dpo_with_the_tdpo2_kl_variant_by_hand():
    result = L.weighted_dpo_loss(
        torch.tensor([[1.0], [0.0]]),
        torch.ones(2, 1),
        torch.ones(2, 1),
        beta=1.0,
        sequence_kl=torch.tensor([0.2, 0.6]),
        kl_alpha=0.5,
    )
    assert result.losses.item() == pytest.approx(softplus(1.0 - 0.5 * (0.6 - 0.2)), abs=1e-6)
    # The released code logs TDPO's rewards: β·(Σ W·r + Σ KL).
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == pytest.approx((1.2, 0.6))


def test_tidpo_with_lambda_zero_and_flat_prior_is_uniformly_weighted_dpo():
    logratios, _, mask = _token_batch(4)
    attribution = torch.rand_like(mask) * 10
    flat = L.gaussian_prior(mask, sigma=None)
    mean_weights = L.importance_weights(attribution, flat, mask, importance_lambda=0.0, how="mean")
    torch.testing.assert_close(mean_weights, mask)  # weight 1 on every completion token
    tidpo = L.weighted_dpo_loss(logratios, mean_weights, mask, beta=0.1)
    dpo = L.dpo_loss(L.masked_sum(logratios, mask), beta=0.1)
    torch.testing.assert_close(tidpo.losses, dpo.losses, rtol=0, atol=1e-7)
    # The paper's sum-to-1 normalisation gives weight 1/T: DPO on length-normalised log-ratios.
    sum_weights = L.importance_weights(attribution, flat, mask, importance_lambda=0.0, how="sum")
    normalised = L.masked_sum(logratios, mask) / mask.sum(-1)
    torch.testing.assert_close(
        L.weighted_dpo_loss(logratios, sum_weights, mask, beta=0.1).losses,
        L.dpo_loss(normalised, beta=0.1).losses,
        rtol=0,
        atol=1e-7,
    )


def test_gaussian_prior_by_hand():
    # T = 4: μ = 1.5, σ = ¼·4 = 1 → P(t) = exp(−½(t − 1.5)²); prompt and padding stay 0.
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    prior = L.gaussian_prior(mask, sigma=0.25)[0].tolist()
    expected = [0.0, math.exp(-1.125), math.exp(-0.125), math.exp(-0.125), math.exp(-1.125), 0.0]
    assert prior == pytest.approx(expected, abs=1e-7)


def test_gaussian_prior_width_has_a_floor_of_one_token_as_the_released_code():
    # T = 3 with σ = ⅛·3 = 0.375 → max(1, 0.375) = 1: P = exp(−½(t − 1)²).
    prior = L.gaussian_prior(torch.ones(1, 3), sigma=0.125)[0].tolist()
    assert prior == pytest.approx([math.exp(-0.5), 1.0, math.exp(-0.5)], abs=1e-7)


def test_importance_weights_without_attribution_or_with_one_token_as_the_released_code():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    prior = torch.tensor([[1.0, 2.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    weights = L.importance_weights(torch.zeros(2, 4), prior, mask, importance_lambda=0.7, how="mean")
    assert weights[0].tolist() == pytest.approx([0.75, 1.5, 0.75, 0.0])  # the prior alone, mean 1
    assert weights[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # a single token gets no weight


def test_importance_weights_mix_normalised_attribution_and_prior_by_hand():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    attribution = torch.tensor([[3.0, 1.0, 9.0]])  # 9 is outside the completion: ignored
    prior = torch.tensor([[1.0, 1.0, 0.0]])
    weights = L.importance_weights(attribution, prior, mask, importance_lambda=0.7, how="sum")[0].tolist()
    assert weights == pytest.approx([0.7 * 0.75 + 0.3 * 0.5, 0.7 * 0.25 + 0.3 * 0.5, 0.0])
    weights = L.importance_weights(attribution, prior, mask, importance_lambda=0.2, how="mean")[0].tolist()
    assert weights == pytest.approx([0.2 * 1.5 + 0.8, 0.2 * 0.5 + 0.8, 0.0])


def test_triplet_hinge_is_zero_when_the_anchor_sits_on_the_chosen_and_far_from_the_rejected():
    anchor, anchor_mask = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
    pair = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # chosen = anchor; ‖d − c‖² = 8 ≥ margin
    assert L.triplet_loss(anchor, anchor_mask, pair, torch.ones(2, 2), margin=1.0).item() == 0.0


def test_triplet_hinge_is_positive_by_hand_when_the_anchor_is_nearer_the_rejected():
    anchor, anchor_mask = torch.tensor([[0.0, 0.0]]), torch.ones(1, 2)
    pair = torch.tensor([[1.0, 2.0], [0.5, 0.0]])  # ‖d − b‖² = 5, ‖d − c‖² = 0.25
    assert L.triplet_loss(anchor, anchor_mask, pair, torch.ones(2, 2), margin=0.5).item() == pytest.approx(
        5.25
    )


def test_triplet_truncate_alignment_compares_only_the_shared_prefix():
    # Anchor of 3 tokens, chosen of 2, rejected of 4: T* = 2. Tokens past T* change nothing.
    anchor = torch.tensor([[0.0, 0.0, 100.0]])
    pair = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 3.0, 100.0, 100.0]])
    pair_mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    value = L.triplet_loss(anchor, torch.ones(1, 3), pair, pair_mask, margin=0.0, alignment="truncate").item()
    assert value == 0.0  # 1 − 9 < 0
    value = L.triplet_loss(
        anchor, torch.ones(1, 3), pair.flip(0), pair_mask.flip(0), margin=0.0, alignment="truncate"
    ).item()
    assert value == pytest.approx(9.0 - 1.0)


def test_triplet_mean_alignment_compares_length_normalised_sums():
    anchor = torch.tensor([[1.0, 3.0, 0.0]])  # mean 2 over its 2 tokens
    anchor_mask = torch.tensor([[1.0, 1.0, 0.0]])
    pair = torch.tensor([[4.0, 0.0], [1.0, 1.0]])  # chosen mean 4 (1 token), rejected mean 1
    pair_mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    value = L.triplet_loss(anchor, anchor_mask, pair, pair_mask, margin=0.5, alignment="mean").item()
    assert value == pytest.approx((2 - 4) ** 2 - (2 - 1) ** 2 + 0.5)


def test_left_align_moves_completion_tokens_to_the_front():
    values = torch.tensor([[9.0, 1.0, 2.0, 9.0], [9.0, 9.0, 3.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 0]])
    aligned, lengths = L.left_align(values, mask)
    assert aligned.tolist() == [[1.0, 2.0], [3.0, 0.0]] and lengths.tolist() == [2, 1]
