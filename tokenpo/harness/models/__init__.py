"""Model specs: built-in names pulled into a cache, local folders, or hub ids."""

from tokenpo.harness.models.load import load_causal_lm, load_tokenizer
from tokenpo.harness.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
from tokenpo.harness.models.store import ModelStore, resolve_model

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "ModelStore", "load_causal_lm", "load_tokenizer", "resolve_model"]
