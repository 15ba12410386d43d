"""Load the policy and its reference, and run forwards that keep only the logits a loss needs.

A batch's logits are kept from the first completion token on (``logits_to_keep``): the LM head
is not applied to prompt positions, whose scores no loss reads. Positions are handled as a
*completion grid*: column j of the grid is the token at sequence position ``start + j``, scored
by the logits at position ``start + j − 1``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from tokenpo.trainers.config import LoraSettings, TrainingConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_policy(model_path: str, training: TrainingConfig, weights_from: str | None = None) -> nn.Module:
    """The trainable policy: full weights, or LoRA adapters (new, or ``weights_from`` when resuming).

    ``weights_from`` is a checkpoint folder to continue from (full weights or adapters).
    """
    source = weights_from if weights_from and training.lora is None else model_path
    model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[training.model_dtype])
    model.config.use_cache = False
    if training.gradient_checkpointing:
        # Non-reentrant checkpointing supports autograd.grad w.r.t. inputs (TI-DPO attribution).
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if training.lora is not None:
        model = _with_lora(model, training.lora, weights_from)
    # After the adapters exist (TRL's order): LoRA's own dropout is off too, so the policy's forward
    # matches the reference's (adapters disabled, no dropout) where the weights agree.
    if training.disable_dropout:
        disable_dropout(model)
    model.train()
    return model


def _with_lora(model: PreTrainedModel, lora: LoraSettings, weights_from: str | None) -> nn.Module:
    from peft import LoraConfig, PeftModel, get_peft_model

    if weights_from is not None:
        return PeftModel.from_pretrained(model, weights_from, is_trainable=True)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_reference(model_path: str, training: TrainingConfig) -> nn.Module:
    """A frozen copy of the starting model (full fine-tuning only; LoRA disables its adapters instead)."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=DTYPES[training.model_dtype])
    disable_dropout(model)
    model.config.use_cache = False
    model.requires_grad_(False)
    return model.eval()


def disable_dropout(model: nn.Module) -> None:
    """Preference losses compare two forwards of the same text: dropout would add noise to both."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextlib.contextmanager
def reference_of(policy: nn.Module, reference: nn.Module | None) -> Iterator[nn.Module]:
    """The reference model: ``reference`` when given, else the LoRA policy with adapters disabled."""
    if reference is not None:
        yield reference
        return
    if not is_peft(policy):
        raise RuntimeError("a reference is needed: pass the frozen model or train LoRA adapters")
    with policy.disable_adapter():
        yield policy


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks, found by shape: the ModuleList with num_hidden_layers entries."""
    config = getattr(model, "config", None)
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"cannot find the {count} transformer blocks of {type(model).__name__}")


@dataclass
class CompletionGrid:
    """Where a batch's completion tokens are, as columns from ``start`` on.

    ``targets[:, j]`` is the token at position ``start + j``; ``mask[:, j]`` says whether it is a
    completion token. The last column is padding so the grid lines up with the kept logits
    (positions ``start − 1 … L − 1``).
    """

    start: int
    targets: torch.Tensor  # (N, K) int64
    mask: torch.Tensor  # (N, K) float32

    @classmethod
    def of(cls, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> CompletionGrid:
        columns = completion_mask.any(dim=0).nonzero()
        # A completion token at position 0 has no logits predicting it; scoring starts at 1.
        start = max(int(columns[0]) if len(columns) else 1, 1)
        pad = input_ids.new_zeros(input_ids.shape[0], 1)
        targets = torch.cat([input_ids[:, start:], pad], dim=1)
        mask = torch.cat([completion_mask[:, start:], pad], dim=1).float()
        return cls(start, targets, mask)

    @property
    def width(self) -> int:
        return self.targets.shape[1]

    def take(self, per_position: torch.Tensor, position: Literal["token", "prediction"] = "token") -> torch.Tensor:
        """(N, L, ...) values per sequence position → (N, K, ...) on the grid.

        ``token``: column j gets the values of its token's own position, start + j (zeros in the
        pad column). ``prediction``: the values of position start + j − 1, whose logits predict
        the token — where the logits, log-probs and KL of column j come from.
        """
        if position == "prediction":
            return per_position[:, self.start - 1 :]
        values = per_position[:, self.start :]
        pad = values.new_zeros(values.shape[0], 1, *values.shape[2:])
        return torch.cat([values, pad], dim=1)


def _forward_parameters(model: nn.Module) -> set[str]:
    """The keyword arguments the underlying model's ``forward`` takes (through DDP and peft wrappers)."""
    base = model
    while hasattr(base, "module") and isinstance(base.module, nn.Module):  # DDP and friends
        base = base.module
    if is_peft(base):
        base = base.get_base_model()
    return set(inspect.signature(base.forward).parameters)


def _accepts_logits_to_keep(model: nn.Module) -> bool:
    return "logits_to_keep" in _forward_parameters(model)


def output_cache(output):
    """The keys/values cache a forward returned (``cache`` in newer transformers, ``past_key_values`` before)."""
    return getattr(output, "cache", None) or getattr(output, "past_key_values", None)


def grid_forward(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    grid: CompletionGrid,
    inputs_embeds: torch.Tensor | None = None,
    output_hidden_states: bool = False,
    keep_cache: bool = False,
):
    """Run ``model`` and return its output with ``logits`` on the grid: (N, K, V).

    ``keep_cache`` also returns the keys and values of every position (:func:`output_cache`, with their
    autograd history), for a second forward that continues a prefix of these rows.
    """
    kwargs: dict = {"attention_mask": attention_mask, "use_cache": keep_cache}
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = input_ids
    if output_hidden_states:
        kwargs["output_hidden_states"] = True
    keep = input_ids.shape[1] - grid.start + 1
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep
        output = model(**kwargs)
    else:
        output = model(**kwargs)
        output.logits = output.logits[:, -keep:]
    return output


def input_embeddings(model: nn.Module) -> nn.Module:
    base = model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
    return base.get_input_embeddings()


def reusable_prefix_cache(cache) -> bool:
    """Whether ``cache`` holds every position's keys and values, row-selectable: a plain
    ``DynamicCache`` without sliding-window layers (hybrid and sliding caches drop positions)."""
    from transformers import DynamicCache

    if not isinstance(cache, DynamicCache) or not hasattr(cache, "batch_select_indices"):
        return False
    return not any(getattr(layer, "is_sliding", False) for layer in getattr(cache, "layers", ()))


def continue_prefixes(model: nn.Module, cache, rows: list[int], prefix_lengths: list[int], continuations: dict):
    """Forward ``continuations`` after the first ``prefix_lengths`` tokens of ``rows`` of a cached batch.

    Row r's continuation attends to positions 0..prefix_lengths[r]−1 of cached row rows[r] (the rest
    of that row is masked out) and to itself, at positions prefix_lengths[r] onwards: the same keys,
    values and logits as a forward of prefix + continuation, without recomputing the prefix.
    Gradients flow through the cached keys and values into the first forward. ``cache`` is consumed.

    Args:
        continuations: right-padded ``input_ids`` and ``attention_mask`` (A, n), as
            :func:`tokenpo.trainers.data.collate_sequences` makes them.
    Returns the model output: logits (A, n, V) for the n continuation positions.
    """
    input_ids, own = continuations["input_ids"], continuations["attention_mask"]
    device = input_ids.device
    cached_length = cache.get_seq_length()
    cache.batch_select_indices(torch.tensor(rows, device=device))
    prefix = torch.tensor(prefix_lengths, device=device)[:, None]
    visible_prefix = torch.arange(cached_length, device=device)[None, :] < prefix
    attention = torch.cat([visible_prefix.to(own.dtype), own], dim=1)
    positions = prefix + torch.arange(input_ids.shape[1], device=device)[None, :]
    # transformers renamed ``past_key_values`` to ``cache`` (the old name is deprecated, then removed).
    keyword = "cache" if "cache" in _forward_parameters(model) else "past_key_values"
    return model(
        input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True, **{keyword: cache}
    )
