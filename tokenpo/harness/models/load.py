"""Load tokenizers and causal LMs from a resolved path or hub id, the same way everywhere."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(path_or_id: str, padding_side: str = "right") -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token (eos when the model defines none)."""
    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(path_or_id: str, dtype: str = "float32") -> PreTrainedModel:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return AutoModelForCausalLM.from_pretrained(path_or_id, dtype=DTYPES[dtype])
