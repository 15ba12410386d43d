"""Shared fixtures: tiny models (fast), the real SmolLM2-135M (slow tests), the benchmark data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("HARNESS_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """``../shared/benchmarks`` (or $HARNESS_BENCHMARKS); tests that need it skip when it is absent."""
    if not (BENCHMARKS / "README.md").is_file():
        pytest.skip(f"benchmark data not found at {BENCHMARKS} (set HARNESS_BENCHMARKS)")
    return BENCHMARKS


@pytest.fixture(scope="session")
def tiny_llama():
    from tokenpo.harness.models.tiny import build_tiny_model

    return build_tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_gpt2():
    from tokenpo.harness.models.tiny import build_tiny_model

    return build_tiny_model("gpt2")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tokenpo.harness.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The real SmolLM2-135M-Instruct folder, pulled into the user's cache once (offline: from GGUF)."""
    from tokenpo.harness.models import resolve_model

    return resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def prepared_benchmarks(benchmarks_dir, tmp_path_factory) -> Path:
    """The benchmarks converted by ``harness data prepare`` into a temporary folder (offline evals)."""
    from tokenpo.evals.data import prepare_benchmarks

    return prepare_benchmarks(benchmarks_dir, tmp_path_factory.mktemp("prepared")).data_dir


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, str]:
    """Saved tiny Llama and GPT-2 folders (what ``trainers.train`` loads from a path)."""
    from tokenpo.harness.models.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    for family in ("llama", "gpt2"):
        save_tiny_model(family, root / family)
    return {family: str(root / family) for family in ("llama", "gpt2")}


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_models(request):
    """Tiny models gain nothing from several threads and lose much when the cores are shared (threads
    spin at every barrier); one thread also gives subprocesses started with OMP_NUM_THREADS=1 the same
    float summation order. Tests on the real model keep torch's default."""
    if "smollm2_path" in request.fixturenames:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Real lm-eval output made at test time, shared by the leaderboard tests (one session fixture).
from lmeval_output import lmeval_output  # noqa: E402, F401
