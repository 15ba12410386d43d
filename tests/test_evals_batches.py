"""The hf backend's batch size per request type: by default generation one request at a time (as plain
lm_eval) and scoring in batches; an explicit size (or lm-eval's ``auto``) for both; recorded as such."""

from __future__ import annotations

import pytest

from tokenpo.evals.backends import DEFAULT_BATCH, batch_sizes, build_lm
from tokenpo.harness.cli import build_parser


def test_without_a_size_each_request_type_gets_its_own_and_one_size_serves_both():
    assert batch_sizes(None) == {"generate_until": 1, "loglikelihood": 8} == DEFAULT_BATCH
    assert batch_sizes(4) == {"generate_until": 4, "loglikelihood": 4}
    assert batch_sizes("auto") == {"generate_until": "auto", "loglikelihood": "auto"}
    # On a GPU a batch of generations costs little more than one: both batch.
    assert batch_sizes(None, "cuda:0") == {"generate_until": 8, "loglikelihood": 8}


def test_the_hf_model_generates_with_its_generation_batch_and_scores_with_its_own(tiny_llama, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = tiny_llama
    seen = []
    monkeypatch.setattr(
        HFLM, "generate_until", lambda self, requests, disable_tqdm=False: seen.append(self.batch_size) or []
    )
    lm = build_lm("hf", model, tokenizer, device="cpu")
    assert lm.batch_size == 8  # what _loglikelihood_tokens batches with
    lm.generate_until([])
    assert seen == [1] and lm.batch_size == 8  # swapped in for the call, then back
    explicit = build_lm("hf", model, tokenizer, batch_size=3, device="cpu")
    explicit.generate_until([])
    assert seen == [1, 3] and explicit.batch_size == 3


@pytest.mark.parametrize(
    ("given", "read"), [(["--batch-size", "auto"], "auto"), (["--batch_size", "4"], 4), ([], None)]
)
def test_harness_eval_reads_an_integer_auto_or_nothing(given, read):
    args = build_parser().parse_args(["eval", "--tasks", "gsm8k", *given])
    assert args.batch_size == read


def test_the_results_record_the_batch_of_each_request_type(tiny_llama, prepared_benchmarks, tmp_path):
    import json

    from tokenpo.evals import evaluate

    model, tokenizer = tiny_llama
    evaluate(model, tokenizer, tasks=["gsm8k"], limit=1, data_dir=prepared_benchmarks, output_dir=tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["batch_size"] == results["harness"]["batch_size"] == DEFAULT_BATCH
