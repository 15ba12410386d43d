"""Each method as what it needs from a step's forwards and how it turns them into losses.

A method declares what it needs from a step in a frozen :class:`Needs`, fixed by its configuration;
the engine (``tokenpo.trainers.engine``) runs those forwards and hands the results over as
:class:`StepTensors`; the method calls its loss from ``tokenpo.trainers.losses`` and
returns per-pair losses, rewards and statistics. Statistics are (sum, count) pairs so that
micro-batches and processes add up before dividing.

The batch's layout (chosen rows first, then rejected) ends here: each method reduces token terms to
one value per completion over the whole batch (one reduction over all 2B rows: how a reduction
groups its additions can depend on the number of rows), then :func:`split_pairs` gives the losses
their chosen and rejected tensors by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from tokenpo.trainers import losses as L
from tokenpo.trainers.activations import activation_mask
from tokenpo.trainers.anchors import AnchorPool
from tokenpo.trainers.config import DPOConfig, MethodConfig, SparsePOConfig, TDPOConfig, TIDPOConfig
from tokenpo.trainers.hooknames import resolve_points
from tokenpo.trainers.masks import MaskHead

Stat = tuple[torch.Tensor, torch.Tensor]


def split_pairs(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B, ...) rows in the engine's layout (:class:`StepTensors`) → chosen rows (B, ...), rejected rows
    (B, ...)."""
    chosen, rejected = rows.chunk(2, dim=0)
    return chosen, rejected


@dataclass
class StepTensors:
    """What one micro-batch's forwards produced, on the completion grid (2B rows, K columns).

    Rows 0..B−1 are the chosen completions, rows B..2B−1 the rejected ones. TI-DPO's anchors have
    a grid of their own (A rows, Ka columns), one row per entry of ``anchor_pairs`` (its pair).
    """

    targets: torch.Tensor  # (2B, K) token ids
    mask: torch.Tensor  # (2B, K) completion tokens
    policy_logps: torch.Tensor  # (2B, K) float32
    reference_logps: torch.Tensor  # (2B, K) float32
    token_kl: torch.Tensor | None = None  # (2B, K) KL_t, for methods whose needs.token_kl
    reference_hidden: list[torch.Tensor] | None = None  # per layer (2B, K, H)
    activation_scores: dict[str, list[torch.Tensor]] | None = None  # per hook type, per tensor (2B, K)
    token_weights: torch.Tensor | None = None  # (2B, K) TI-DPO's W_t
    anchor_pairs: list[int] = field(default_factory=list)
    anchor_logratios: torch.Tensor | None = None  # (A, Ka)
    anchor_mask: torch.Tensor | None = None  # (A, Ka)

    @property
    def pairs(self) -> int:
        return self.mask.shape[0] // 2


@dataclass
class MethodOutput:
    result: L.PairLosses
    stats: dict[str, Stat]
    token_scores: dict[str, torch.Tensor]  # kind → (2B, K), for token_scores.jsonl


def _mean_stat(values: torch.Tensor) -> Stat:
    values = values.detach().float()
    return values.sum(), torch.tensor(float(values.numel()), device=values.device)


def _token_stat(values: torch.Tensor, mask: torch.Tensor) -> Stat:
    return (values.detach().float() * mask).sum(), mask.sum()


# A completion of T tokens gives its top token at least 1/T of the weight even when every token weighs
# the same: the top-share statistic reads completions of at least 8 tokens, where that floor is 12.5 %,
# half the 25 % bound of training health's ``concentrated_weights``.
TOP_SHARE_MIN_TOKENS = 8


def _top_share_stat(values: torch.Tensor, mask: torch.Tensor) -> Stat:
    """Per completion of at least ``TOP_SHARE_MIN_TOKENS`` tokens, its largest token's share of its total
    weight (max_t w_t / Σ_t w_t over completion tokens), over those whose total is > 0: an all-zero mask has
    no share (training health's ``concentrated_weights``). Weights and masks are non-negative, so padding
    (0) never is the max."""
    values = values.detach().float() * mask
    totals = values.sum(-1)
    counted = (totals > 0) & (mask.sum(-1) >= TOP_SHARE_MIN_TOKENS)
    shares = values.amax(-1) / torch.where(counted, totals, torch.ones_like(totals))
    return (shares * counted).sum(), counted.float().sum()


@dataclass(frozen=True)
class Needs:
    """What a method needs from a step's forwards, fixed by its configuration when it is built.

    The loop reads it; nothing changes it afterwards.

    - ``token_kl``: KL_t of the reference against the policy, from the live reference's logits.
    - ``hidden_states``: the reference's hidden states of every layer (learned masks).
    - ``activation_points``/``activation_layers``: reference activations to capture (MaPO masks).
    - ``states_position``: which position's reference states serve a completion token:
      "prediction" (the position whose logits predict it) or "token" (its own).
    - ``attribution``: TI-DPO's gradient attribution, on the "policy" every step or on the
      "reference" once per example.
    - ``anchors``: TI-DPO's anchor completions (the method's :class:`AnchorPool`).
    """

    token_kl: bool = False
    hidden_states: bool = False
    activation_points: tuple[str, ...] | None = None
    activation_layers: tuple[int, ...] | None = None
    states_position: Literal["prediction", "token"] = "token"
    attribution: Literal["policy", "reference"] | None = None
    anchors: bool = False

    @property
    def reference(self) -> Literal["cached", "live"]:
        """ "cached": per-token reference log-probs suffice, computed once per example; "live": the
        reference runs every step (its logits, hidden states or activations)."""
        live = self.token_kl or self.hidden_states or self.activation_points is not None
        return "live" if live else "cached"


class Method:
    """Base: a method's configuration, what it needs from a step (:class:`Needs`) and its loss."""

    anchors: AnchorPool | None = None  # TI-DPO's anchor completions, kept across steps

    def __init__(self, config: MethodConfig, needs: Needs):
        self.config, self.needs = config, needs

    def token_weights(
        self, attribution: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """Per-position token weights (N, L) from per-position attribution scores (methods whose
        ``needs.attribution`` is set)."""
        raise NotImplementedError

    def compute(self, x: StepTensors) -> MethodOutput:
        raise NotImplementedError

    def _logratios(self, x: StepTensors) -> torch.Tensor:
        return x.policy_logps - x.reference_logps

    @staticmethod
    def _token_kl(x: StepTensors) -> torch.Tensor:
        if x.token_kl is None:
            raise RuntimeError("the token KL needs a live reference's logits (needs.token_kl)")
        return x.token_kl

    @staticmethod
    def _kl_stats(sequence_kl: torch.Tensor) -> dict[str, Stat]:
        chosen, rejected = split_pairs(sequence_kl)
        return {"kl/chosen": _mean_stat(chosen), "kl/rejected": _mean_stat(rejected)}


class DPO(Method):
    config: DPOConfig

    def __init__(self, config: DPOConfig):
        super().__init__(config, Needs())

    def compute(self, x: StepTensors) -> MethodOutput:
        mask = x.mask
        token_logratios = self._logratios(x)
        chosen_logratios, rejected_logratios = split_pairs(L.masked_sum(token_logratios, mask))
        if self.config.loss == "ipo":
            chosen_lengths, rejected_lengths = split_pairs(mask.sum(-1))
            result = L.ipo_loss(
                chosen_logratios, rejected_logratios, chosen_lengths, rejected_lengths, self.config.beta
            )
        else:
            result = L.dpo_loss(chosen_logratios, rejected_logratios, self.config.beta, self.config.label_smoothing)
        return MethodOutput(result, {}, {"logratio": token_logratios})


class TDPO(Method):
    config: TDPOConfig

    def __init__(self, config: TDPOConfig):
        super().__init__(config, Needs(token_kl=True))

    def compute(self, x: StepTensors) -> MethodOutput:
        mask = x.mask
        token_logratios = self._logratios(x)
        sequence_kl = L.masked_sum(self._token_kl(x), mask)
        chosen_logratios, rejected_logratios = split_pairs(L.masked_sum(token_logratios, mask))
        chosen_kl, rejected_kl = split_pairs(sequence_kl)
        result = L.tdpo_loss(
            chosen_logratios,
            rejected_logratios,
            chosen_kl,
            rejected_kl,
            self.config.beta,
            self.config.variant,
            self.config.kl_alpha,
        )
        return MethodOutput(result, self._kl_stats(sequence_kl), {"logratio": token_logratios})


class SparsePO(Method):
    config: SparsePOConfig

    def __init__(self, config: SparsePOConfig, head: MaskHead | None):
        """``head``: the learned mask head the method runs (``mask: learned``), None for MaPO masks."""
        learned = config.mask == "learned"
        super().__init__(
            config,
            Needs(
                token_kl=True,
                hidden_states=learned,
                activation_points=None if learned else tuple(resolve_points(config.hooks)),
                activation_layers=None if learned or config.layers is None else tuple(config.layers),
                states_position=config.mask_position,
            ),
        )
        self.head = head

    def masks(self, x: StepTensors) -> tuple[torch.Tensor, torch.Tensor]:
        if self.head is None:
            common = activation_mask(x.activation_scores, x.mask, self.config.hook_aggregation)
            return common, common
        heads = self.head(x.reference_hidden)
        return heads[0], heads[-1]

    def compute(self, x: StepTensors) -> MethodOutput:
        c = self.config
        mask = x.mask
        token_logratios = self._logratios(x)
        token_kl = self._token_kl(x)
        mask_u, mask_d = self.masks(x)
        # Each completion's masked sums (Σ_t m_u·r_t, Σ_t m_d·KL_t, ‖m_u‖₁, ‖m_d‖₁), then by side.
        chosen_logratios, rejected_logratios = split_pairs(L.masked_sum(mask_u * token_logratios, mask))
        chosen_kl, rejected_kl = split_pairs(L.masked_sum(mask_d * token_kl, mask))
        chosen_l1_u, rejected_l1_u = split_pairs(L.masked_sum(mask_u.abs(), mask))
        chosen_l1_d, rejected_l1_d = split_pairs(L.masked_sum(mask_d.abs(), mask))
        # With one mask for both terms the two L1 terms fall on the same mask: the official code
        # halves both λ to make up for adding it twice.
        share = 0.5 if c.common_mask else 1.0
        result = L.sparsepo_loss(
            chosen_logratios,
            rejected_logratios,
            chosen_kl,
            rejected_kl,
            chosen_l1_u,
            rejected_l1_u,
            chosen_l1_d,
            rejected_l1_d,
            c.beta,
            share * c.lambda_u,
            share * c.lambda_d,
        )
        stats = self._kl_stats(L.masked_sum(token_kl, mask))
        chosen_mask, rejected_mask = split_pairs(mask)
        kinds = {"u": mask_u} if c.common_mask else {"u": mask_u, "d": mask_d}
        for kind, values in kinds.items():
            chosen, rejected = split_pairs(values)
            stats[f"mask/{kind}_zero_fraction"] = _token_stat((values == 0).float(), mask)
            stats[f"mask/{kind}_chosen_mean"] = _token_stat(chosen, chosen_mask)
            stats[f"mask/{kind}_rejected_mean"] = _token_stat(rejected, rejected_mask)
            stats[f"mask/{kind}_top_share"] = _top_share_stat(values, mask)
        scores = {"logratio": token_logratios, "mask_u": mask_u, "mask_d": mask_d}
        return MethodOutput(result, stats, scores)


class TIDPO(Method):
    config: TIDPOConfig

    def __init__(self, config: TIDPOConfig):
        needs = Needs(
            token_kl=config.variant == "tdpo2-kl",
            attribution=config.importance_source,
            anchors=config.uses_anchors,
        )
        super().__init__(config, needs)
        if config.uses_anchors:
            self.anchors = AnchorPool(
                config.anchor_every,
                config.anchor_max_new_tokens,
                config.anchor_temperature,
                config.anchor_top_k,
                config.anchor_top_p,
            )

    def token_weights(
        self, attribution: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """W over ``weight_span`` (the whole sequence, as released, or the completion); each weight
        belongs to its own token's position (the released code: the attribution of embedding e_t)."""
        c = self.config
        span = (attention_mask if c.weight_span == "sequence" else completion_mask).float()
        prior = L.gaussian_prior(span, c.prior_sigma if c.prior == "gaussian" else None)
        return L.importance_weights(attribution, prior, span, c.importance_lambda, c.normalisation)

    def compute(self, x: StepTensors) -> MethodOutput:
        c = self.config
        mask = x.mask
        token_logratios = self._logratios(x)
        weights = x.token_weights * mask
        sequence_kl = L.masked_sum(self._token_kl(x), mask) if c.variant == "tdpo2-kl" else None
        # Σ_t W_t·r_t per completion, the weights constants; then by side.
        chosen_logratios, rejected_logratios = split_pairs(L.masked_sum(weights.detach() * token_logratios, mask))
        chosen_kl, rejected_kl = split_pairs(sequence_kl) if sequence_kl is not None else (None, None)
        result = L.weighted_dpo_loss(chosen_logratios, rejected_logratios, c.beta, chosen_kl, rejected_kl, c.kl_alpha)
        stats = self._kl_stats(sequence_kl) if sequence_kl is not None else {}
        chosen_mask, rejected_mask = split_pairs(mask)
        chosen_weights, rejected_weights = split_pairs(weights)
        stats["weights/chosen_mean"] = _token_stat(chosen_weights, chosen_mask)
        stats["weights/rejected_mean"] = _token_stat(rejected_weights, rejected_mask)
        stats["weights/max"] = _mean_stat(weights.amax(dim=-1))
        stats["weights/top_share"] = _top_share_stat(weights, mask)
        if self.anchors is not None:
            result = self._with_triplet(x, result, token_logratios, mask, stats)
        return MethodOutput(result, stats, {"logratio": token_logratios, "weight": weights})

    def _with_triplet(self, x, result, token_logratios, mask, stats) -> L.PairLosses:
        """L = L_w + γ·L_trip for pairs that have an anchor; the others keep L_w."""
        c = self.config
        triplet = torch.zeros_like(result.losses)
        if x.anchor_pairs:
            pairs = torch.tensor(x.anchor_pairs, device=mask.device)
            rows = torch.cat([pairs, pairs + x.pairs])  # the anchored pairs' chosen rows, then their rejected rows
            chosen_logratios, rejected_logratios = split_pairs(token_logratios[rows])
            chosen_mask, rejected_mask = split_pairs(mask[rows])
            values = L.triplet_loss(
                x.anchor_logratios,
                x.anchor_mask,
                chosen_logratios,
                chosen_mask,
                rejected_logratios,
                rejected_mask,
                c.triplet_margin,
                c.triplet_alignment,
            )
            triplet = triplet.index_put((pairs,), values)
            stats["triplet/loss"] = _mean_stat(values)
            stats["triplet/active"] = _mean_stat((values > 0).float())
        stats["triplet/anchored"] = _mean_stat(
            torch.zeros_like(triplet).index_fill(
                0, torch.tensor(x.anchor_pairs, dtype=torch.long, device=mask.device), 1.0
            )
        )
        return L.PairLosses(result.losses + c.gamma * triplet, result.chosen_rewards, result.rejected_rewards)


def trainable_modules(config: MethodConfig, model_config) -> dict[str, nn.Module]:
    """New modules the method trains beside the policy (SparsePO's learned mask head), by name;
    ``model_config`` gives the sizes."""
    if isinstance(config, SparsePOConfig) and config.mask == "learned":
        heads = 1 if config.heads == "common" else 2
        head = MaskHead(
            model_config.num_hidden_layers,
            model_config.hidden_size,
            heads,
            config.mask_dropout,
            config.head_init,
            config.head_init_std or getattr(model_config, "initializer_range", 0.02),
        )
        return {"head": head}
    return {}


def build_method(config: MethodConfig, model_config, modules: Mapping[str, nn.Module] | None = None) -> Method:
    """The :class:`Method` for ``config``, running ``modules`` (default: new :func:`trainable_modules`;
    the loop passes its prepared, e.g. DDP-wrapped, copies)."""
    if modules is None:
        modules = trainable_modules(config, model_config)
    if isinstance(config, DPOConfig):
        return DPO(config)
    if isinstance(config, TDPOConfig):
        return TDPO(config)
    if isinstance(config, SparsePOConfig):
        return SparsePO(config, modules.get("head"))
    if isinstance(config, TIDPOConfig):
        return TIDPO(config)
    raise TypeError(f"unknown method config {type(config).__name__}")
