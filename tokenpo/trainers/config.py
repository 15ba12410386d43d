"""Typed configuration of a training run: one dataclass per method, plus the common settings.

Every value is checked in ``__post_init__``; a bad one raises :class:`ConfigValueError` naming
the field, which ``tokenpo.core.config`` turns into ``FILE: method.beta: must be positive, got -1``.
Defaults are the papers' settings (see ``docs`` in the README's Training section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tokenpo.core.errors import UserError


class ConfigValueError(UserError, ValueError):
    """A configuration value that is out of range; ``field`` names the offending key."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def _require(condition: bool, field: str, problem: str) -> None:
    if not condition:
        raise ConfigValueError(field, problem)


def _positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        _require(value > 0 and math.isfinite(value), name, f"must be positive, got {value}")


def _fraction(config: object, name: str, upper_open: bool = False) -> None:
    value = getattr(config, name)
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    _require(ok, name, f"must be in [0, 1{')' if upper_open else ']'}, got {value}")


@dataclass
class DPOConfig:
    """DPO: −log σ(β·h), h = Σ r_t(y_w) − Σ r_t(y_l); conservative DPO with ``label_smoothing``;
    IPO with ``loss: ipo`` ((h̄ − 1/(2β))², h̄ length-normalised, as in TRL)."""

    name: Literal["dpo"] = "dpo"
    beta: float = 0.1
    loss: Literal["sigmoid", "ipo"] = "sigmoid"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, "beta")
        _require(
            0.0 <= self.label_smoothing < 0.5,
            "label_smoothing",
            f"must be in [0, 0.5), got {self.label_smoothing}",
        )
        _require(
            self.loss == "sigmoid" or self.label_smoothing == 0.0,
            "label_smoothing",
            "applies to the sigmoid loss only; set it to 0 with loss: ipo",
        )

    @property
    def label(self) -> str:
        return "dpo" if self.loss == "sigmoid" else "ipo"


@dataclass
class TDPOConfig:
    """TDPO-1: −log σ(β(u − δ)); TDPO-2: −log σ(βu − αβ(ΣKL(y_l) − sg[ΣKL(y_w)]))."""

    name: Literal["tdpo"] = "tdpo"
    beta: float = 0.1
    variant: Literal[1, 2] = 2
    alpha: float = 0.5

    def __post_init__(self) -> None:
        _positive(self, "beta")
        _require(self.alpha >= 0, "alpha", f"must be non-negative, got {self.alpha}")

    @property
    def label(self) -> str:
        return f"tdpo{self.variant}"


@dataclass
class SparsePOConfig:
    """SparsePO: token masks m_u (reward) and m_d (KL), activation-based ("MaPO") or learned.

    Defaults are what the official code (huawei-noah/HEBO, SparsePO/) computes; other readings are
    named options. ``mask: activation`` averages the frozen reference's activations at ``hooks``
    (hook types, or ``type.point`` names; see ``tokenpo.trainers.activations``) of ``layers`` (None: all)
    into one mask for both terms, within each hook type and then across types
    (``hook_aggregation: by-type``). ``mask: learned`` trains a head on the reference's hidden
    states: ``heads: common`` (one mask for both terms) or ``independent`` (two).
    ``mask_position: prediction`` reads the mask of completion token y_t from the states at
    position t−1, whose logits predict y_t (official); ``token`` reads it at t.
    With common masks both L1 terms fall on one mask and, as in the official code, both λ are
    halved: the penalty is (λ_u + λ_d)/2 · (‖m(y_w)‖₁ + ‖m(y_l)‖₁).
    ``head_init``: "official" draws the head's weights from N(0, σ²) with σ = ``head_init_std`` (None:
    the model's ``initializer_range``, what the official code ends up with), "average" is ours
    (see :class:`tokenpo.trainers.masks.MaskHead`). The head trains at ``head_learning_rate`` (None: the
    policy's, as the official single optimiser).
    """

    name: Literal["sparsepo"] = "sparsepo"
    beta: float = 0.1
    mask: Literal["activation", "learned"] = "learned"
    heads: Literal["common", "independent"] = "common"
    hooks: list[str] = field(default_factory=lambda: ["mlp", "attention", "residual", "logits"])
    hook_aggregation: Literal["by-type", "flat"] = "by-type"
    layers: list[int] | None = None
    mask_position: Literal["prediction", "token"] = "prediction"
    lambda_u: float = 0.0
    lambda_d: float = 0.0
    mask_dropout: float = 0.01
    head_init: Literal["official", "average"] = "official"
    head_init_std: float | None = None
    head_learning_rate: float | None = None
    head_weight_decay: float = 0.01

    def __post_init__(self) -> None:
        from tokenpo.trainers.activations import resolve_points

        _positive(self, "beta")
        try:
            resolve_points(self.hooks)
        except ValueError as error:
            raise ConfigValueError("hooks", str(error)) from None
        _require(
            self.layers is None or len(self.layers) > 0, "layers", "must be null (all layers) or non-empty"
        )
        for name in ("lambda_u", "lambda_d", "head_weight_decay"):
            value = getattr(self, name)
            _require(value >= 0, name, f"must be non-negative, got {value}")
            _require(
                self.mask == "learned" or name == "head_weight_decay" or value == 0,
                name,
                "applies to learned masks only (activation masks are constants of the frozen reference)",
            )
        _fraction(self, "mask_dropout", upper_open=True)
        if self.head_learning_rate is not None:
            _positive(self, "head_learning_rate")
        if self.head_init_std is not None:
            _positive(self, "head_init_std")
            _require(self.head_init == "official", "head_init_std", "sets the spread of head_init: official only")

    @property
    def label(self) -> str:
        return "sparsepo-activation" if self.mask == "activation" else f"sparsepo-learned-{self.heads}"

    @property
    def common_mask(self) -> bool:
        """One mask serves both terms: activation masks, and learned masks with a common head."""
        return self.mask == "activation" or self.heads == "common"


@dataclass
class TIDPOConfig:
    """TI-DPO: importance-weighted log-ratios, the TDPO-2 KL term, plus γ × a triplet term on anchors.

    Defaults are what the authors' released code computes with the paper's final settings (Table
    B12: α 0.5, β 0.1, γ 0.1, λ 0.7; σ = T/4, B.6). Weights W = λ·Î + (1−λ)·P̂ mix gradient
    attribution I and a Gaussian prior P (σ = max(1, ``prior_sigma``·T)), normalised over
    ``weight_span`` ("sequence": prompt and completion tokens, as the released code; "completion":
    completion tokens only) by ``normalisation`` ("mean": to mean 1, the released code; "sum": to
    sum 1, the paper's printed formula). ``importance_source``: "policy" (every step, as released)
    or "reference" (once per example, cached). ``variant: tdpo2-kl`` is the released objective,
    −log σ(β·Δr_W − α·β·(ΣKL(y_l) − sg[ΣKL(y_w)])) with α = ``kl_alpha``; ``weighted-dpo`` the
    printed formula without the KL term. Anchors are sampled from the policy (top-k, top-p,
    temperature) on every ``anchor_every``-th step (1: as released). ``triplet_alignment``:
    "pairwise" (released: each distance over the tokens both completions have), "truncate"
    (the tokens all three have) or "mean" (length-normalised sums).
    """

    name: Literal["tidpo"] = "tidpo"
    beta: float = 0.1
    gamma: float = 0.1
    importance_lambda: float = 0.7
    prior: Literal["gaussian", "flat"] = "gaussian"
    prior_sigma: float = 0.25
    normalisation: Literal["mean", "sum"] = "mean"
    weight_span: Literal["sequence", "completion"] = "sequence"
    importance_source: Literal["policy", "reference"] = "policy"
    anchor_every: int = 1
    anchor_max_new_tokens: int = 64
    anchor_temperature: float = 0.8
    anchor_top_k: int = 50
    anchor_top_p: float = 0.95
    triplet_margin: float = 0.001
    triplet_alignment: Literal["pairwise", "truncate", "mean"] = "pairwise"
    variant: Literal["tdpo2-kl", "weighted-dpo"] = "tdpo2-kl"
    kl_alpha: float = 0.5

    def __post_init__(self) -> None:
        _positive(self, "beta", "prior_sigma", "anchor_temperature", "anchor_every", "anchor_max_new_tokens")
        _fraction(self, "importance_lambda")
        _require(0 < self.anchor_top_p <= 1, "anchor_top_p", f"must be in (0, 1], got {self.anchor_top_p}")
        for name in ("gamma", "triplet_margin", "kl_alpha", "anchor_top_k"):
            value = getattr(self, name)
            _require(value >= 0, name, f"must be non-negative, got {value}")

    @property
    def label(self) -> str:
        return "tidpo" if self.variant == "tdpo2-kl" else "tidpo-weighted-dpo"

    @property
    def uses_anchors(self) -> bool:
        return self.gamma > 0


MethodConfig = DPOConfig | TDPOConfig | SparsePOConfig | TIDPOConfig


@dataclass
class LoraSettings:
    """LoRA adapters through peft; the reference is then the base model with adapters disabled."""

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    def __post_init__(self) -> None:
        _positive(self, "r", "alpha")
        _fraction(self, "dropout", upper_open=True)


@dataclass
class TrainingConfig:
    """Settings every method shares. Batch sizes count preference pairs."""

    seed: int = 42
    learning_rate: float = 1e-6
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    epochs: float = 1.0
    max_steps: int | None = None
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    max_length: int = 1024
    max_prompt_length: int = 512
    model_dtype: Literal["float32", "bfloat16"] = "float32"
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    precompute_reference: bool = True
    disable_dropout: bool = True
    lora: LoraSettings | None = None
    save_every: int = 0
    keep_checkpoints: int | None = None
    resume: Literal["auto", "never"] = "auto"
    vocab_chunk_tokens: int = 512
    token_scores_examples: int = 4
    report_to: list[Literal["tensorboard", "wandb"]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _positive(
            self,
            "learning_rate",
            "per_device_batch_size",
            "gradient_accumulation_steps",
            "epochs",
            "max_length",
            "max_prompt_length",
            "vocab_chunk_tokens",
        )
        if self.max_steps is not None:
            _positive(self, "max_steps")
        if self.max_grad_norm is not None:
            _positive(self, "max_grad_norm")
        if self.keep_checkpoints is not None:
            _positive(self, "keep_checkpoints")
        _fraction(self, "warmup_ratio", upper_open=True)
        _require(self.weight_decay >= 0, "weight_decay", f"must be non-negative, got {self.weight_decay}")
        _require(
            self.save_every >= 0,
            "save_every",
            f"must be 0 (only the final model) or positive, got {self.save_every}",
        )
        _require(
            self.token_scores_examples >= 0,
            "token_scores_examples",
            f"must be non-negative, got {self.token_scores_examples}",
        )
        _require(
            self.max_prompt_length < self.max_length,
            "max_prompt_length",
            f"must be below max_length ({self.max_length}) so every completion keeps a token, "
            f"got {self.max_prompt_length}",
        )


@dataclass
class TrainConfig:
    """A method and the training settings: everything ``trainers.train`` needs besides model and data."""

    method: MethodConfig = field(default_factory=DPOConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
