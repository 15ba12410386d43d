"""The losses against values computed by hand, special cases that reduce exactly, autograd, and the
names that say which tensor is the chosen and which the rejected."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tokenpo.trainers import losses as L
from tokenpo.trainers.methods import split_pairs


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
    result = L.dpo_loss(torch.tensor([1.0]), torch.tensor([-1.0]), beta=0.5)
    assert result.losses.item() == pytest.approx(softplus(1.0), abs=1e-7)
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == (0.5, -0.5)


def test_conservative_dpo_by_hand():
    result = L.dpo_loss(torch.tensor([1.0]), torch.tensor([-1.0]), beta=0.5, label_smoothing=0.1)
    assert result.losses.item() == pytest.approx(0.9 * softplus(1.0) + 0.1 * softplus(-1.0), abs=1e-7)


def test_ipo_loss_is_length_normalised_by_hand():
    # chosen 2 over 4 tokens → 0.5; rejected −1 over 2 tokens → −0.5; h̄ = 1; 1/(2β) = 2 → (1 − 2)² = 1.
    result = L.ipo_loss(torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([4.0]), torch.tensor([2.0]), beta=0.25)
    assert result.losses.item() == pytest.approx(1.0)
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == (0.5, -0.25)


def test_tdpo_losses_by_hand_and_the_stop_gradient_of_tdpo2():
    chosen, rejected = torch.tensor([1.0]), torch.tensor([0.0])
    chosen_kl = torch.tensor([0.2], requires_grad=True)
    rejected_kl = torch.tensor([0.5], requires_grad=True)
    tdpo1 = L.tdpo_loss(chosen, rejected, chosen_kl, rejected_kl, beta=1.0, variant="tdpo1")
    assert tdpo1.losses.item() == pytest.approx(softplus(1.0 - (0.5 - 0.2)), abs=1e-6)
    tdpo2 = L.tdpo_loss(chosen, rejected, chosen_kl, rejected_kl, beta=1.0, variant="tdpo2", kl_alpha=0.5)
    assert tdpo2.losses.item() == pytest.approx(softplus(1.0 - 0.5 * (0.5 - 0.2)), abs=1e-6)
    grad = torch.autograd.grad(tdpo2.losses.sum(), (chosen_kl, rejected_kl), allow_unused=True)
    assert grad[0] is None and grad[1].item() > 0  # sg[D(y_w)]: no gradient into the chosen KL
    grad1 = torch.autograd.grad(tdpo1.losses.sum(), (chosen_kl, rejected_kl))
    assert grad1[0].item() < 0 < grad1[1].item()
    # Rewards as the official TDPO code logs them: β·(Σ r + Σ KL).
    assert (tdpo2.chosen_rewards.item(), tdpo2.rejected_rewards.item()) == pytest.approx((1.2, 0.5))


def _token_batch(seed: int = 0):
    torch.manual_seed(seed)
    logratios = torch.randn(4, 6)
    kl = torch.rand(4, 6)
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0]]).float()
    return logratios, kl, mask


def _sides(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_t over each completion of a token batch in the engine's layout, then chosen and rejected."""
    return split_pairs(L.masked_sum(values, mask))


def _sparsepo(logratios, kl, mask_u, mask_d, mask, **kwargs) -> L.PairLosses:
    """SparsePO on a token batch, summed and split as ``SparsePO.compute`` does."""
    (chosen, rejected), (chosen_kl, rejected_kl), (chosen_l1_u, rejected_l1_u), (chosen_l1_d, rejected_l1_d) = (
        _sides(values, mask) for values in (mask_u * logratios, mask_d * kl, mask_u.abs(), mask_d.abs())
    )
    return L.sparsepo_loss(
        chosen, rejected, chosen_kl, rejected_kl, chosen_l1_u, rejected_l1_u, chosen_l1_d, rejected_l1_d, **kwargs
    )


def _weighted_dpo(logratios, weights, mask, beta, sequence_kl=None, kl_alpha=0.5) -> L.PairLosses:
    """TI-DPO's weighted term on a token batch, summed and split as ``TIDPO.compute`` does."""
    chosen_kl, rejected_kl = split_pairs(sequence_kl) if sequence_kl is not None else (None, None)
    return L.weighted_dpo_loss(
        *_sides(weights.detach() * logratios, mask), beta, chosen_kl, rejected_kl, kl_alpha=kl_alpha
    )


def test_sparsepo_with_unit_reward_mask_and_no_kl_mask_is_dpo_exactly():
    logratios, kl, mask = _token_batch()
    ones, zeros = torch.ones_like(mask), torch.zeros_like(mask)
    sparse = _sparsepo(logratios, kl, ones, zeros, mask, beta=0.3)
    dpo = L.dpo_loss(*_sides(logratios, mask), beta=0.3)
    assert torch.equal(sparse.losses, dpo.losses)
    assert torch.equal(sparse.chosen_rewards, dpo.chosen_rewards)


def test_sparsepo_with_unit_masks_is_tdpo1_exactly():
    logratios, kl, mask = _token_batch(1)
    ones = torch.ones_like(mask)
    sparse = _sparsepo(logratios, kl, ones, ones, mask, beta=0.3)
    tdpo = L.tdpo_loss(*_sides(logratios, mask), *_sides(kl, mask), beta=0.3, variant="tdpo1")
    torch.testing.assert_close(sparse.losses, tdpo.losses, rtol=0, atol=1e-7)


def test_sparsepo_l1_penalty_adds_lambda_times_mask_mass():
    logratios, kl, mask = _token_batch(2)
    mask_u = torch.full_like(mask, 0.5)
    mask_d = torch.full_like(mask, 2.0)
    base = _sparsepo(logratios, kl, mask_u, mask_d, mask, beta=0.1)
    penalised = _sparsepo(logratios, kl, mask_u, mask_d, mask, beta=0.1, lambda_u=0.01, lambda_d=0.001)
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
    result = _sparsepo(logratios, kl, mask_u, mask_d, mask, beta=2.0, lambda_u=0.1, lambda_d=0.0)
    assert result.losses.item() == pytest.approx(softplus(2.0 * (-0.5 - 0.2)) + 0.1 * 1.5, abs=1e-6)
    # Rewards as the official code logs them: β·(Σ m_u·r − Σ m_d·KL) = 2·(1 − 0.2), 2·(1.5 − 0.4).
    assert (result.chosen_rewards.item(), result.rejected_rewards.item()) == pytest.approx((1.6, 2.2))


def test_weighted_dpo_with_unit_weights_is_dpo_and_by_hand_with_weights():
    logratios, _, mask = _token_batch(3)
    ones = torch.ones_like(mask)
    weighted = _weighted_dpo(logratios, ones, mask, beta=0.2)
    torch.testing.assert_close(weighted.losses, L.dpo_loss(*_sides(logratios, mask), beta=0.2).losses)
    result = _weighted_dpo(
        torch.tensor([[1.0, 2.0], [4.0, 0.0]]),
        torch.tensor([[0.5, 0.25], [0.5, 0.0]]),
        torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        beta=1.0,
    )
    assert result.losses.item() == pytest.approx(softplus(1.0 - 2.0), abs=1e-6)


def test_weighted_dpo_with_the_tdpo2_kl_variant_by_hand():
    result = _weighted_dpo(
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
    tidpo = _weighted_dpo(logratios, mean_weights, mask, beta=0.1)
    dpo = L.dpo_loss(*_sides(logratios, mask), beta=0.1)
    torch.testing.assert_close(tidpo.losses, dpo.losses, rtol=0, atol=1e-7)
    # The paper's sum-to-1 normalisation gives weight 1/T: DPO on length-normalised log-ratios.
    sum_weights = L.importance_weights(attribution, flat, mask, importance_lambda=0.0, how="sum")
    normalised = L.masked_sum(logratios, mask) / mask.sum(-1)
    torch.testing.assert_close(
        _weighted_dpo(logratios, sum_weights, mask, beta=0.1).losses,
        L.dpo_loss(*split_pairs(normalised), beta=0.1).losses,
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
    anchor, ones = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
    chosen, rejected = torch.tensor([[1.0, 1.0]]), torch.tensor([[-1.0, -1.0]])  # chosen = anchor; ‖d − c‖² = 8
    assert L.triplet_loss(anchor, ones, chosen, ones, rejected, ones, margin=1.0).item() == 0.0


def test_triplet_hinge_is_positive_by_hand_when_the_anchor_is_nearer_the_rejected():
    anchor, ones = torch.tensor([[0.0, 0.0]]), torch.ones(1, 2)
    chosen, rejected = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.0]])  # ‖d − b‖² = 5, ‖d − c‖² = 0.25
    value = L.triplet_loss(anchor, ones, chosen, ones, rejected, ones, margin=0.5).item()
    assert value == pytest.approx(5.25)


def test_triplet_truncate_alignment_compares_only_the_shared_prefix():
    # Anchor of 3 tokens, chosen of 2, rejected of 4: T* = 2. Tokens past T* change nothing.
    anchor = torch.tensor([[0.0, 0.0, 100.0]])
    short, short_mask = torch.tensor([[0.0, 1.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    long, long_mask = torch.tensor([[0.0, 3.0, 100.0, 100.0]]), torch.ones(1, 4)
    value = L.triplet_loss(
        anchor, torch.ones(1, 3), short, short_mask, long, long_mask, margin=0.0, alignment="truncate"
    ).item()
    assert value == 0.0  # 1 − 9 < 0
    value = L.triplet_loss(
        anchor, torch.ones(1, 3), long, long_mask, short, short_mask, margin=0.0, alignment="truncate"
    ).item()
    assert value == pytest.approx(9.0 - 1.0)


def test_triplet_mean_alignment_compares_length_normalised_sums():
    anchor = torch.tensor([[1.0, 3.0, 0.0]])  # mean 2 over its 2 tokens
    anchor_mask = torch.tensor([[1.0, 1.0, 0.0]])
    chosen, chosen_mask = torch.tensor([[4.0, 0.0]]), torch.tensor([[1.0, 0.0]])  # mean 4 over 1 token
    rejected, rejected_mask = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)  # mean 1
    value = L.triplet_loss(
        anchor, anchor_mask, chosen, chosen_mask, rejected, rejected_mask, margin=0.5, alignment="mean"
    ).item()
    assert value == pytest.approx((2 - 4) ** 2 - (2 - 1) ** 2 + 0.5)


def test_left_align_moves_completion_tokens_to_the_front():
    values = torch.tensor([[9.0, 1.0, 2.0, 9.0], [9.0, 9.0, 3.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 0]])
    aligned, lengths = L.left_align(values, mask)
    assert aligned.tolist() == [[1.0, 2.0], [3.0, 0.0]] and lengths.tolist() == [2, 1]


# ----------------------------------------------------------------------------- names carry the meaning


def _side(seed: int) -> dict[str, torch.Tensor]:
    """One side's terms for 3 pairs: log-ratios, KL, mask norms, lengths."""
    generator = torch.Generator().manual_seed(seed)
    terms = {name: torch.randn(3, generator=generator) for name in ("logratios", "kl", "l1_u", "l1_d")}
    return terms | {"lengths": torch.tensor([2.0, 5.0, 3.0])}


def _by_keyword(loss: str, chosen: dict, rejected: dict) -> L.PairLosses:
    """``loss`` with each side's terms passed by keyword, the rejected ones first."""
    if loss == "dpo":
        return L.dpo_loss(rejected_logratios=rejected["logratios"], chosen_logratios=chosen["logratios"], beta=0.5)
    if loss == "ipo":
        return L.ipo_loss(
            rejected_logratios=rejected["logratios"],
            rejected_lengths=rejected["lengths"],
            chosen_logratios=chosen["logratios"],
            chosen_lengths=chosen["lengths"],
            beta=0.5,
        )
    if loss in ("tdpo1", "tdpo2"):
        return L.tdpo_loss(
            rejected_logratios=rejected["logratios"],
            rejected_kl=rejected["kl"],
            chosen_logratios=chosen["logratios"],
            chosen_kl=chosen["kl"],
            beta=0.5,
            variant=loss,
        )
    if loss == "sparsepo":
        return L.sparsepo_loss(
            **{f"rejected_{name}": value for name, value in rejected.items() if name != "lengths"},
            **{f"chosen_{name}": value for name, value in chosen.items() if name != "lengths"},
            beta=0.5,
        )
    kl = {"rejected_kl": rejected["kl"], "chosen_kl": chosen["kl"]} if loss == "weighted-dpo-kl" else {}
    return L.weighted_dpo_loss(
        rejected_logratios=rejected["logratios"], chosen_logratios=chosen["logratios"], beta=0.5, **kl
    )


@pytest.mark.parametrize("loss", ["dpo", "ipo", "tdpo1", "tdpo2", "sparsepo", "weighted-dpo", "weighted-dpo-kl"])
def test_a_loss_reads_chosen_and_rejected_by_name_and_mirrors_when_they_are_swapped(loss):
    winner, loser = _side(0), _side(1)
    result, swapped = _by_keyword(loss, winner, loser), _by_keyword(loss, loser, winner)
    # The rewards follow the names: what was logged for the chosen is now logged for the rejected.
    assert torch.equal(swapped.chosen_rewards, result.rejected_rewards)
    assert torch.equal(swapped.rejected_rewards, result.chosen_rewards)
    if loss == "ipo":  # (h̄ − 1/(2β))² with h̄ negated
        h = winner["logratios"] / winner["lengths"] - loser["logratios"] / loser["lengths"]
        torch.testing.assert_close(swapped.losses, (-h - 1 / (2 * 0.5)) ** 2)
        torch.testing.assert_close(result.losses, (h - 1 / (2 * 0.5)) ** 2)
    else:  # −log σ(z) and −log σ(−z): P(y_w ≻ y_l) + P(y_l ≻ y_w) = 1
        torch.testing.assert_close(torch.exp(-result.losses) + torch.exp(-swapped.losses), torch.ones(3))
        assert not torch.allclose(result.losses, swapped.losses)


def test_triplet_reads_chosen_and_rejected_by_name_and_mirrors_when_they_are_swapped():
    generator = torch.Generator().manual_seed(3)
    anchor, chosen, rejected = (torch.randn(3, 4, generator=generator) for _ in range(3))
    ones = torch.ones(3, 4)

    def triplet(chosen_values, rejected_values):
        return L.triplet_loss(
            rejected_token_logratios=rejected_values,
            rejected_mask=ones,
            chosen_token_logratios=chosen_values,
            chosen_mask=ones,
            anchor_token_logratios=anchor,
            anchor_mask=ones,
            margin=0.0,
        )

    # max(0, x) − max(0, −x) = x, with x = ‖d − b‖² − ‖d − c‖².
    by_hand = ((anchor - chosen) ** 2).sum(-1) - ((anchor - rejected) ** 2).sum(-1)
    torch.testing.assert_close(triplet(chosen, rejected) - triplet(rejected, chosen), by_hand)
