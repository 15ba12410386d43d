"""Render examples to text and tokenise them into prompt and completion ids, with truncation.

Truncation policy (the same as TRL's DPO defaults):

1. A prompt longer than ``max_prompt_length`` keeps its LAST ``max_prompt_length`` tokens: the end
   of a prompt is what the answer responds to.
2. Each completion is then cut on the RIGHT so that prompt + completion ≤ ``max_length``.

``max_prompt_length < max_length`` is required, so every completion keeps at least one token.
Chosen and rejected share the same prompt ids. Standard-format text is tokenised with the
tokenizer's special tokens on the prompt (a BOS where the model uses one) and an EOS appended to
each completion that ended (TRL's convention), but not to one marked truncated (cut at a length
limit, e.g. sampled up to a token cap): an EOS there would teach an ending the text never had.
Conversational text is rendered with the chat template, which already holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from tokenpo.trainers.data.errors import DataError
from tokenpo.trainers.data.records import PreferenceExample


@dataclass(frozen=True)
class TruncationPolicy:
    """How long a tokenized pair may be (None: no limit); the defaults live in ``TrainingConfig`` only."""

    max_length: int | None
    max_prompt_length: int | None

    def __post_init__(self) -> None:
        for name in ("max_length", "max_prompt_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.max_length is not None and (
            self.max_prompt_length is None or self.max_prompt_length >= self.max_length
        ):
            raise ValueError(
                f"max_prompt_length ({self.max_prompt_length}) must be set and below max_length "
                f"({self.max_length}) so every completion keeps at least one token"
            )


@dataclass(frozen=True)
class TokenizedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    # Lengths before truncation: (prompt, chosen, rejected).
    full_lengths: tuple[int, int, int]

    @property
    def truncated(self) -> bool:
        return self.full_lengths != (len(self.prompt_ids), len(self.chosen_ids), len(self.rejected_ids))


@dataclass(frozen=True)
class RenderedExample:
    prompt: str
    chosen: str
    rejected: str
    templated: bool  # True when the chat template rendered it (special tokens are in the text)


def render_example(example: PreferenceExample, tokenizer: PreTrainedTokenizerBase) -> RenderedExample:
    if not example.conversational:
        return RenderedExample(example.prompt, example.chosen, example.rejected, templated=False)
    if tokenizer.chat_template is None:
        raise DataError(
            example.source, example.location, "chosen", "conversational record, but the tokenizer has no chat template"
        )
    prompt = tokenizer.apply_chat_template(example.prompt, add_generation_prompt=True, tokenize=False)
    completions = []
    for field in ("chosen", "rejected"):
        full = tokenizer.apply_chat_template(example.prompt + getattr(example, field), tokenize=False)
        if not full.startswith(prompt):
            raise DataError(
                example.source,
                example.location,
                field,
                "the chat template does not render the prompt as a prefix of the conversation",
            )
        completions.append(full[len(prompt) :])
    return RenderedExample(prompt, completions[0], completions[1], templated=True)


def tokenize_example(
    example: PreferenceExample, tokenizer: PreTrainedTokenizerBase, policy: TruncationPolicy
) -> TokenizedPair:
    text = render_example(example, tokenizer)
    prompt = tokenizer(text.prompt, add_special_tokens=not text.templated)["input_ids"]
    completions = []
    for completion, truncated in ((text.chosen, example.chosen_truncated), (text.rejected, example.rejected_truncated)):
        ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if not text.templated and not truncated:
            ids = [*ids, tokenizer.eos_token_id]
        completions.append(ids)
    full_lengths = (len(prompt), len(completions[0]), len(completions[1]))
    if policy.max_prompt_length is not None and len(prompt) > policy.max_prompt_length:
        prompt = prompt[-policy.max_prompt_length :]
    if policy.max_length is not None:
        room = policy.max_length - len(prompt)
        completions = [ids[:room] for ids in completions]
    return TokenizedPair(prompt, completions[0], completions[1], full_lengths)


def tokenize_examples(
    examples: Sequence[PreferenceExample], tokenizer: PreTrainedTokenizerBase, policy: TruncationPolicy
) -> list[TokenizedPair]:
    return [tokenize_example(example, tokenizer, policy) for example in examples]


def length_statistics(pairs: Sequence[TokenizedPair]) -> dict[str, dict[str, float]]:
    """min / mean / p50 / p95 / max token lengths before truncation, per part and for the pair."""
    full = np.array([pair.full_lengths for pair in pairs], dtype=np.int64).reshape(-1, 3)
    columns = {
        "prompt": full[:, 0],
        "chosen": full[:, 1],
        "rejected": full[:, 2],
        "longest sequence": full[:, 0] + np.maximum(full[:, 1], full[:, 2]),
    }
    return {
        name: {
            "min": float(values.min()),
            "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
            "max": float(values.max()),
        }
        for name, values in columns.items()
    }
