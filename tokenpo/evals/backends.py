"""The language-model backends lm-eval drives: ``hf`` (transformers) and ``vllm`` (optional extra)."""

from __future__ import annotations

from typing import Any

from tokenpo.core.hardware import default_device
from tokenpo.evals.errors import EvalError

BACKENDS = ("hf", "vllm")
# The hf backend's batch sizes when none is given, per lm-eval request type, on a CPU: each never slower
# than plain lm_eval's default (a batch of 1) there, measured by the bench (docs/performance.md). A batch of
# greedy generations waits for its longest member, and a CPU computes the padding rows in full, so
# generation goes one request at a time (answering as lm_eval does); scoring batches sequences lm-eval has
# sorted by length, so padding is small. On a GPU, where a batch costs little more than one request, both
# batch 8.
DEFAULT_BATCH = {"generate_until": 1, "loglikelihood": 8}
GPU_BATCH = {"generate_until": 8, "loglikelihood": 8}


def batch_sizes(batch_size: int | str | None, device: str | None = None) -> dict[str, int | str]:
    """The batch size of each request type: ``batch_size`` for all (an integer, or lm-eval's ``auto``), or
    when None :data:`DEFAULT_BATCH` on a CPU and :data:`GPU_BATCH` on ``device`` ``cuda…``."""
    if batch_size is None:
        return dict(GPU_BATCH if str(device).startswith("cuda") else DEFAULT_BATCH)
    return dict.fromkeys(DEFAULT_BATCH, batch_size)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def build_lm(
    backend: str,
    model: Any,
    tokenizer: Any = None,
    batch_size: int | str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    max_length: int | None = None,
):
    """An lm-eval ``LM`` for ``model``: a path / hub id, or (``hf`` only) an in-memory ``PreTrainedModel``.

    ``hf`` batches generation and scoring on ``device`` (default: CUDA when available, else CPU) with
    :func:`batch_sizes` (``batch_size``, or per request type when None). ``vllm`` needs
    ``pip install 'tokenpo-harness[vllm]'`` and a path; it schedules its own batches (``auto``).
    """
    if backend not in BACKENDS:
        raise EvalError("--backend", backend, f"unknown backend; choose one of {', '.join(BACKENDS)}")
    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        device = device or default_device()
        sizes = batch_sizes(batch_size, device)
        kwargs: dict[str, Any] = {"batch_size": sizes["loglikelihood"], "device": device, "max_length": max_length}
        if isinstance(model, str):
            kwargs["dtype"] = dtype
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        lm = HFLM(pretrained=model, **kwargs)
        if sizes["generate_until"] != sizes["loglikelihood"]:
            lm = _with_generation_batch(lm, sizes["generate_until"])
        return lm
    if not vllm_available():
        raise EvalError("--backend", "vllm", "vLLM is not installed (pip install 'tokenpo-harness[vllm]')")
    if not isinstance(model, str):
        raise EvalError("--backend", "vllm", "vLLM loads models from a folder or hub id, not an in-memory object")
    from lm_eval.models.vllm_causallms import VLLM

    kwargs = {"batch_size": "auto" if batch_size is None else batch_size, "dtype": dtype, "max_length": max_length}
    if isinstance(tokenizer, str):
        kwargs["tokenizer"] = tokenizer
    return VLLM(pretrained=model, **kwargs)


def _with_generation_batch(lm: Any, generation_batch: int | str) -> Any:
    """``lm`` (lm-eval's ``HFLM``, which has one batch size for every request type) generating with
    ``generation_batch`` and scoring with its own: its ``generate_until`` runs with the batch size swapped in."""
    scoring_generate = lm.generate_until

    def generate_until(requests, disable_tqdm: bool = False):
        scoring_batch, lm.batch_size_per_gpu = lm.batch_size_per_gpu, generation_batch
        try:
            return scoring_generate(requests, disable_tqdm)
        finally:
            lm.batch_size_per_gpu = scoring_batch

    lm.generate_until = generate_until
    return lm
