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
    from harness.models.tiny import build_tiny_model

    return build_tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_gpt2():
    from harness.models.tiny import build_tiny_model

    return build_tiny_model("gpt2")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from harness.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The real SmolLM2-135M-Instruct folder, pulled into the user's cache once (offline: from GGUF)."""
    from harness.models import resolve_model

    return resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def prepared_benchmarks(benchmarks_dir, tmp_path_factory) -> Path:
    """The benchmarks converted by ``harness data prepare`` into a temporary folder (offline evals)."""
    from evals.data import prepare_benchmarks

    return prepare_benchmarks(benchmarks_dir, tmp_path_factory.mktemp("prepared")).data_dir
