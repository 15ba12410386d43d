"""The language-model backends lm-eval drives: ``hf`` (transformers) and ``vllm`` (optional extra)."""

from __future__ import annotations

from typing import Any

from tokenpo.evals.errors import EvalError

BACKENDS = ("hf", "vllm")


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def build_lm(
    backend: str,
    model: Any,
    tokenizer: Any = None,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str = "auto",
    max_length: int | None = None,
):
    """An lm-eval ``LM`` for ``model``: a path / hub id, or (``hf`` only) an in-memory ``PreTrainedModel``.

    ``hf`` batches generation and scoring with ``batch_size`` on ``device`` (default: CUDA when
    available, else CPU). ``vllm`` needs ``pip install 'tokenpo-harness[vllm]'`` and a path.
    """
    if backend not in BACKENDS:
        raise EvalError("--backend", backend, f"unknown backend; choose one of {', '.join(BACKENDS)}")
    if backend == "hf":
        import torch
        from lm_eval.models.huggingface import HFLM

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {"batch_size": batch_size, "device": device, "max_length": max_length}
        if isinstance(model, str):
            kwargs["dtype"] = dtype
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        return HFLM(pretrained=model, **kwargs)
    if not vllm_available():
        raise EvalError("--backend", "vllm", "vLLM is not installed (pip install 'tokenpo-harness[vllm]')")
    if not isinstance(model, str):
        raise EvalError("--backend", "vllm", "vLLM loads models from a folder or hub id, not an in-memory object")
    from lm_eval.models.vllm_causallms import VLLM

    kwargs = {"batch_size": "auto" if batch_size is None else batch_size, "dtype": dtype, "max_length": max_length}
    if isinstance(tokenizer, str):
        kwargs["tokenizer"] = tokenizer
    return VLLM(pretrained=model, **kwargs)
