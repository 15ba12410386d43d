"""Typed configuration of a training run: one dataclass per method, plus the common settings.

Every value is checked in ``__post_init__``; a bad one raises :class:`ConfigValueError` naming
the field, which ``tokenpo.core.config`` turns into ``FILE: method.beta: must be positive, got -1``.
Defaults are the papers' settings (docs/methods.md, docs/training.md). Each field's help is in its
metadata (``field(metadata={"help": ...})``): ``docs/configuration.md`` and the command line's
options are generated from it.

Why one module: it is declarations only (fields, their help, their checks), the one
place a reader looks up what a training setting means; most of its length is help text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tokenpo.core.errors import UserError
from tokenpo.trainers.hooknames import resolve_points


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

    name: Literal["dpo"] = field(default="dpo", metadata={"help": "the method"})
    beta: float = field(default=0.1, metadata={"help": "β: the strength of the implicit KL penalty to the reference"})
    loss: Literal["sigmoid", "ipo"] = field(
        default="sigmoid",
        metadata={"help": "sigmoid: DPO's −log σ(β·h); ipo: (h̄ − 1/(2β))² with h̄ length-normalised, as in TRL"},
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={"help": "conservative DPO: the assumed fraction of flipped labels, in [0, 0.5); sigmoid loss only"},
    )

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
    """TDPO-1: −log σ(β(u − δ)); TDPO-2: −log σ(βu − αβ(ΣKL(y_l) − sg[ΣKL(y_w)])), α = ``kl_alpha``.

    ``variant`` names the objective, as TI-DPO's does; ``kl_alpha`` is the α the TDPO and TI-DPO
    authors' code call ``alpha``, named for the term it weighs (not LoRA's ``alpha``).
    """

    name: Literal["tdpo"] = field(default="tdpo", metadata={"help": "the method"})
    beta: float = field(default=0.1, metadata={"help": "β: the strength of the penalty to the reference"})
    variant: Literal["tdpo1", "tdpo2"] = field(
        default="tdpo2",
        metadata={"help": "tdpo1: TDPO-1, −log σ(β(u − δ)); tdpo2: TDPO-2, −log σ(βu − αβ(ΣKL(y_l) − sg[ΣKL(y_w)]))"},
    )
    kl_alpha: float = field(
        default=0.5, metadata={"help": "α: the weight of TDPO-2's token-level KL term (≥ 0; variant tdpo2)"}
    )

    renamed_keys: ClassVar[dict[str, str]] = {"alpha": "kl_alpha"}  # old key → new key, for the loader's error

    def __post_init__(self) -> None:
        _positive(self, "beta")
        _require(self.kl_alpha >= 0, "kl_alpha", f"must be non-negative, got {self.kl_alpha}")

    @property
    def label(self) -> str:
        return self.variant


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

    name: Literal["sparsepo"] = field(default="sparsepo", metadata={"help": "the method"})
    beta: float = field(default=0.1, metadata={"help": "β: the strength of the penalty to the reference"})
    mask: Literal["activation", "learned"] = field(
        default="learned",
        metadata={
            "help": "learned: a head on the reference's hidden states; activation: the frozen "
            "reference's activations at `hooks` (one mask for both terms)"
        },
    )
    heads: Literal["common", "independent"] = field(
        default="common",
        metadata={"help": "learned masks: one mask for the reward and KL terms (common) or two (independent)"},
    )
    hooks: list[str] = field(
        default_factory=lambda: ["mlp", "attention", "residual", "logits"],
        metadata={"help": "activation masks: hook types, or `type.point` names (tokenpo.trainers.activations)"},
    )
    hook_aggregation: Literal["by-type", "flat"] = field(
        default="by-type",
        metadata={
            "help": "activation masks: average within each hook type, then across types (by-type), "
            "or over all points at once (flat)"
        },
    )
    layers: list[int] | None = field(
        default=None, metadata={"help": "activation masks: the decoder layers read; null: all"}
    )
    mask_position: Literal["prediction", "token"] = field(
        default="prediction",
        metadata={
            "help": "prediction: token y_t's mask from the states at t−1, whose logits predict y_t "
            "(official); token: from the states at t"
        },
    )
    lambda_u: float = field(
        default=0.0,
        metadata={
            "help": "λ_u: L1 weight on the reward mask m_u (learned masks only; a common mask is penalised "
            "(λ_u + λ_d)/2 · ‖m‖₁, as the official code)"
        },
    )
    lambda_d: float = field(
        default=0.0, metadata={"help": "λ_d: L1 weight on the KL mask m_d (learned masks only; see lambda_u)"}
    )
    mask_dropout: float = field(default=0.01, metadata={"help": "learned masks: dropout in the mask head, in [0, 1)"})
    head_init: Literal["official", "average"] = field(
        default="official",
        metadata={
            "help": "official: the head's weights drawn from N(0, σ²), σ = head_init_std; average: ours "
            "(tokenpo.trainers.masks.MaskHead)"
        },
    )
    head_init_std: float | None = field(
        default=None,
        metadata={
            "help": "σ of head_init: official; null: the model's initializer_range (what the official code "
            "ends up with)"
        },
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "the mask head's learning rate; null: the policy's (the official single optimiser); 0: the "
            "head stays at its initialisation (the control that shows whether the head learns)"
        },
    )
    head_weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay of the mask head's weights (not its bias and norm)"}
    )

    def __post_init__(self) -> None:
        _positive(self, "beta")
        try:
            resolve_points(self.hooks)
        except ValueError as error:
            raise ConfigValueError("hooks", str(error)) from None
        _require(self.layers is None or len(self.layers) > 0, "layers", "must be null (all layers) or non-empty")
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
            _require(
                self.head_learning_rate >= 0,
                "head_learning_rate",
                f"must be non-negative (0: the head stays at its initialisation), got {self.head_learning_rate}",
            )
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

    name: Literal["tidpo"] = field(default="tidpo", metadata={"help": "the method"})
    beta: float = field(default=0.1, metadata={"help": "β: the strength of the penalty to the reference"})
    gamma: float = field(default=0.1, metadata={"help": "γ: the weight of the triplet term on anchors; 0: no anchors"})
    importance_lambda: float = field(
        default=0.7, metadata={"help": "λ in W = λ·Î + (1−λ)·P̂: gradient attribution against the prior, in [0, 1]"}
    )
    prior: Literal["gaussian", "flat"] = field(
        default="gaussian", metadata={"help": "the prior P over token positions"}
    )
    prior_sigma: float = field(
        default=0.25, metadata={"help": "the Gaussian prior's spread as a fraction of the length T: σ = max(1, this·T)"}
    )
    normalisation: Literal["mean", "sum"] = field(
        default="mean",
        metadata={"help": "weights normalised to mean 1 (released code) or to sum 1 (the paper's printed formula)"},
    )
    weight_span: Literal["sequence", "completion"] = field(
        default="sequence",
        metadata={
            "help": "the tokens weights are normalised over: prompt and completion (released code) or the "
            "completion only"
        },
    )
    importance_source: Literal["policy", "reference"] = field(
        default="policy",
        metadata={
            "help": "attribution from the policy every step (released code) or from the reference, once per "
            "example, cached"
        },
    )
    anchor_every: int = field(
        default=1, metadata={"help": "anchors are sampled from the policy every N-th step (1: every step, as released)"}
    )
    anchor_max_new_tokens: int = field(default=64, metadata={"help": "the anchor's maximum length in new tokens"})
    anchor_temperature: float = field(default=0.8, metadata={"help": "anchor sampling temperature"})
    anchor_top_k: int = field(default=50, metadata={"help": "anchor sampling top-k (0: off)"})
    anchor_top_p: float = field(default=0.95, metadata={"help": "anchor sampling top-p, in (0, 1]"})
    triplet_margin: float = field(default=0.001, metadata={"help": "the triplet loss's margin"})
    triplet_alignment: Literal["pairwise", "truncate", "mean"] = field(
        default="pairwise",
        metadata={
            "help": "triplet distances over the tokens both completions have (pairwise, released), the tokens "
            "all three have (truncate), or length-normalised sums (mean)"
        },
    )
    variant: Literal["tdpo2-kl", "weighted-dpo"] = field(
        default="tdpo2-kl",
        metadata={
            "help": "tdpo2-kl: the released objective with TDPO-2's KL term; weighted-dpo: the printed "
            "formula without it"
        },
    )
    kl_alpha: float = field(
        default=0.5, metadata={"help": "α: the weight of TDPO-2's token-level KL term (≥ 0; variant tdpo2-kl)"}
    )

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

    r: int = field(default=16, metadata={"help": "the adapters' rank"})
    alpha: float = field(default=32.0, metadata={"help": "peft's lora_alpha: adapter updates are scaled by alpha / r"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the adapters' input, in [0, 1)"})
    target_modules: str | list[str] = field(
        default="all-linear", metadata={"help": "the modules that get adapters, as peft's target_modules"}
    )

    def __post_init__(self) -> None:
        _positive(self, "r", "alpha")
        _fraction(self, "dropout", upper_open=True)


@dataclass
class TrainingConfig:
    """Settings every method shares. Batch sizes count preference pairs."""

    seed: int = field(default=42, metadata={"help": "seeds the run and each epoch's data order"})
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW's peak learning rate"})
    per_device_batch_size: int = field(default=4, metadata={"help": "preference pairs per process and micro-batch"})
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "micro-batches per optimiser step; global batch = per_device_batch_size × processes × this"},
    )
    epochs: float = field(
        default=1.0,
        metadata={
            "help": "passes over the data, may be fractional: ⌈epochs × steps per epoch⌉ steps, an epoch "
            "being the whole global batches the pairs fill"
        },
    )
    max_steps: int | None = field(default=None, metadata={"help": "optimiser steps; overrides epochs when set"})
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = field(
        default="linear", metadata={"help": "the learning-rate schedule (transformers' get_scheduler)"}
    )
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "the fraction of the steps the learning rate warms up over, in [0, 1)"}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay of the policy"})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "gradient clipping norm; null: no clipping"})
    max_length: int = field(
        default=1024, metadata={"help": "truncation: prompt + completion tokens (completions cut on the right)"}
    )
    max_prompt_length: int = field(
        default=512, metadata={"help": "truncation: prompt tokens (the prompt's last ones kept); below max_length"}
    )
    model_dtype: Literal["float32", "bfloat16"] = field(
        default="float32",
        metadata={"help": "the weights' dtype; bfloat16 rounds away updates smaller than its resolution"},
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = field(
        default="no", metadata={"help": "accelerate's mixed precision (low-precision matmuls, weights kept)"}
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward to save memory (non-reentrant)"}
    )
    precompute_reference: bool = field(
        default=True,
        metadata={
            "help": "reference log-probs a method can cache (DPO/IPO, TI-DPO's weighted term) are computed "
            "once before training; false runs the reference live every step, as TRL by default"
        },
    )
    disable_dropout: bool = field(
        default=True, metadata={"help": "set the policy's dropout (LoRA's too) to 0, as the reference's"}
    )
    lora: LoraSettings | None = field(
        default=None,
        metadata={
            "help": "LoRA adapters instead of full fine-tuning; the reference is then the base model with "
            "adapters disabled; null: full fine-tuning"
        },
    )
    save_every: int = field(
        default=0, metadata={"help": "a checkpoint every N steps (for resuming); 0: only the final model"}
    )
    keep_checkpoints: int | None = field(default=None, metadata={"help": "keep the newest N checkpoints; null: all"})
    save_only_model: bool = field(
        default=False,
        metadata={
            "help": "checkpoints hold the model (and mask head) without the optimiser, scheduler and RNG state, "
            "as transformers' save_only_model: a third of the disk, evaluated as any checkpoint, but a killed "
            "run starts again from step 0"
        },
    )
    resume: Literal["auto", "never"] = field(
        default="auto",
        metadata={
            "help": "auto: continue an unfinished run of the same configuration from its last checkpoint; "
            "never: refuse a folder that holds one"
        },
    )
    vocab_chunk_tokens: int = field(
        default=512, metadata={"help": "positions per block in the log-prob and token-KL kernels (memory vs speed)"}
    )
    eval_steps: int = field(
        default=0,
        metadata={
            "help": "with held-out pairs (data.eval_fraction or data.eval_path): evaluate them every N steps "
            "and after the last step (TRL's eval_loss, eval_rewards/*, eval_logps/* and the method's own, in "
            "metrics.jsonl); 0: after the last step only"
        },
    )
    token_scores_examples: int = field(
        default=4,
        metadata={"help": "training pairs whose per-token scores under the final policy go to token_scores.jsonl"},
    )
    report_to: list[Literal["tensorboard", "wandb", "trackio", "mlflow"]] = field(
        default_factory=list,
        metadata={
            "help": "trackers that also receive every metrics.jsonl row (accelerate's log_with); each needs its "
            "extra (pip install 'tokenpo-harness[NAME]'); their local files go under RUN/trackers/"
        },
    )

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
            self.eval_steps >= 0, "eval_steps", f"must be 0 (after the last step) or positive, got {self.eval_steps}"
        )
        _require(
            self.token_scores_examples >= 0,
            "token_scores_examples",
            f"must be non-negative, got {self.token_scores_examples}",
        )
        repeated = sorted({name for name in self.report_to if self.report_to.count(name) > 1})
        _require(not repeated, "report_to", f"lists {', '.join(repeated)} more than once")
        _require(
            self.max_prompt_length < self.max_length,
            "max_prompt_length",
            f"must be below max_length ({self.max_length}) so every completion keeps a token, "
            f"got {self.max_prompt_length}",
        )


@dataclass
class TrainConfig:
    """A method and the training settings: everything ``trainers.train`` needs besides model and data."""

    method: MethodConfig = field(
        default_factory=DPOConfig, metadata={"help": "the method (name: dpo, tdpo, sparsepo or tidpo) and its keys"}
    )
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"help": "settings every method shares"})
