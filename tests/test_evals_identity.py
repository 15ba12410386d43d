"""An answer is reused only for the same model and settings; a result folder holds one run's kind of answers."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from tokenpo.evals import evaluate
from tokenpo.evals.errors import EvalError
from tokenpo.evals.identity import journal_digest, model_identity
from tokenpo.evals.results import sample_row

DEFAULT_SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}
CPU_BATCH_8 = {"batch_size": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def model_folder(tiny_llama, tmp_path_factory):
    model, tokenizer = tiny_llama
    folder = tmp_path_factory.mktemp("tiny-folder")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _identity(model, tokenizer=None):
    loaded = SimpleNamespace(model=SimpleNamespace(dtype=torch.float32))
    return model_identity(str(model), tokenizer, loaded, "hf")


def _edited_copy(folder, tmp_path, name, edit):
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    edit(copy)
    return copy


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_the_journal_is_keyed_by_everything_that_can_change_an_answer(model_folder, tmp_path):
    base = journal_digest(_identity(model_folder), DEFAULT_SEEDS, CPU_BATCH_8)
    same_content = _edited_copy(model_folder, tmp_path, "copy", lambda folder: None)
    assert journal_digest(_identity(same_content), DEFAULT_SEEDS, CPU_BATCH_8) == base  # by content, not by path
    variants = {
        "tokenizer": _edited_copy(
            model_folder,
            tmp_path,
            "tokenizer",
            lambda f: _edit_json(f / "tokenizer_config.json", model_max_length=17),
        ),
        "chat template": _edited_copy(
            model_folder, tmp_path, "chat", lambda f: (f / "chat_template.jinja").write_text("{{ messages }}")
        ),
        "config": _edited_copy(
            model_folder, tmp_path, "config", lambda f: _edit_json(f / "config.json", rms_norm_eps=1e-3)
        ),
        "generation config": _edited_copy(
            model_folder, tmp_path, "generation", lambda f: _edit_json(f / "generation_config.json", temperature=0.3)
        ),
    }
    digests = {name: journal_digest(_identity(folder), DEFAULT_SEEDS, CPU_BATCH_8) for name, folder in variants.items()}
    assert base not in digests.values() and len(set(digests.values())) == len(digests), digests
    assert journal_digest(_identity(model_folder), {**DEFAULT_SEEDS, "fewshot_random_seed": 7}, CPU_BATCH_8) != base
    assert journal_digest(_identity(model_folder), DEFAULT_SEEDS, {**CPU_BATCH_8, "batch_size": 1}) != base
    bf16 = model_identity(str(model_folder), None, SimpleNamespace(model=SimpleNamespace(dtype=torch.bfloat16)), "hf")
    assert journal_digest(bf16, DEFAULT_SEEDS, CPU_BATCH_8) != base


def test_hub_ids_are_named_in_full_with_their_resolved_revision(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def revision(model_id, commit):
        ref = tmp_path / f"models--{model_id.replace('/', '--')}" / "refs" / "main"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
        return journal_digest(_identity(model_id), DEFAULT_SEEDS, CPU_BATCH_8)

    first = revision("Qwen/Qwen2.5-0.5B-Instruct", "a" * 40)
    assert revision("Qwen/Qwen2.5-0.5B-Instruct", "b" * 40) != first  # another revision
    assert revision("Qwen/Qwen2.5-1.5B-Instruct", "a" * 40) != first  # one prefix, another model
    unresolved = _identity("Org/never-downloaded")["weights"]
    assert unresolved == {"hub_id": "Org/never-downloaded", "revision": None}


def test_a_folder_holding_another_models_or_settings_answers_refuses(tiny_llama, prepared_benchmarks, tmp_path):
    model, tokenizer = tiny_llama
    run = {"tasks": ["mmlu_abstract_algebra"], "limit": 1, "output_dir": tmp_path}
    evaluate(model, tokenizer, data_dir=prepared_benchmarks, **run)
    other = type(model)(model.config)
    other.load_state_dict({k: v + 0.01 if k.endswith("norm.weight") else v for k, v in model.state_dict().items()})
    with pytest.raises(EvalError, match=r"model: the folder holds answers or results of a run with another model"):
        evaluate(other, tokenizer, data_dir=prepared_benchmarks, **run)
    with pytest.raises(EvalError, match=r"settings: .* another settings"):
        evaluate(model, tokenizer, data_dir=prepared_benchmarks, seed=7, **run)
    with pytest.raises(EvalError, match=r"settings: .* another settings"):
        evaluate(model, tokenizer, data_dir=prepared_benchmarks, batch_size=1, **run)
    # an online run into an offline run's folder: refused before anything reaches the hub
    with pytest.raises(EvalError, match=r"data: .* another data"):
        evaluate(model, tokenizer, data_dir=None, **run)
    # more items of the same run reuse what it has
    more = evaluate(model, tokenizer, data_dir=prepared_benchmarks, **{**run, "limit": 2})
    assert (more.reused_requests, more.computed_requests) == (4, 4)


def test_task_files_of_an_earlier_run_never_load(tiny_llama, prepared_benchmarks, tmp_path):
    # A smoke run's override (a 1-token GSM8K) left in the folder must not reach a later run.
    model, tokenizer = tiny_llama
    stale = tmp_path / ".cache" / "overrides" / "gsm8k.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("include: /nowhere/gsm8k.yaml\ngeneration_kwargs:\n  max_gen_toks: 1\n")
    (tmp_path / ".cache" / "tasks").mkdir()
    (tmp_path / ".cache" / "tasks" / "leftover.yaml").write_text("task: leftover\n")
    run = evaluate(model, tokenizer, tasks=["gsm8k"], limit=1, data_dir=prepared_benchmarks, output_dir=tmp_path)
    assert not stale.exists() and not (tmp_path / ".cache" / "tasks" / "leftover.yaml").exists()
    assert run.results["configs"]["gsm8k"]["generation_kwargs"].get("max_gen_toks") != 1  # the official task


@pytest.mark.parametrize("task", ["gpqa_diamond_zeroshot", "leaderboard_gpqa_diamond", "leaderboard_gpqa_main"])
def test_every_gpqa_task_is_redacted(task):
    row = {"doc_id": 0, "doc": {"Question": "q"}, "arguments": ["q"], "resps": [["a"]], "filtered_resps": ["a"]}
    assert sample_row(task, {**row, "doc_hash": "h", "acc": 1.0}) == {"doc_id": 0, "doc_hash": "h", "acc": 1.0}
    assert sample_row("mmlu_anatomy", row) == row
