"""Model specs: built-in names pulled into a cache, local folders, or hub ids.

The built-in names themselves are :mod:`tokenpo.core.builtin_models`'s (the model cards read them too);
they are re-exported here for the harness.
"""

from tokenpo.core.builtin_models import BUILTIN_MODELS, DEFAULT_MODEL
from tokenpo.harness.models.load import load_causal_lm, load_tokenizer
from tokenpo.harness.models.store import ModelStore, resolve_model

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "ModelStore", "load_causal_lm", "load_tokenizer", "resolve_model"]
