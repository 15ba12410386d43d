"""``harness data prepare``: the hub schemas, row counts, the TruthfulQA MC derivation, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenpo.evals.data import MIRRORS, load_manifest, prepare_benchmarks
from tokenpo.evals.errors import EvalError
from tokenpo.harness.cli import main


def rows(folder: Path, hub_id: str, config: str, split: str) -> list[dict]:
    path = folder / hub_id / config / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def test_row_counts_match_the_source_files(prepared_benchmarks):
    manifest = load_manifest(prepared_benchmarks)
    counts = {name: sum(f["rows"] for f in entry["files"].values()) for name, entry in manifest["benchmarks"].items()}
    assert counts == {
        "gsm8k": 1319 + 7473,
        "mmlu": 14042,
        "gpqa": 198,
        "truthfulqa": 817 * 2,
        "ifeval": 541,
        "humaneval": 164,
        "mbpp": 257,
    }
    for entry in manifest["benchmarks"].values():
        for name, info in entry["files"].items():
            assert len(info["sha256"]) == 64 and (prepared_benchmarks / name).is_file()


def test_mmlu_has_the_hub_schema_and_the_official_subject_configs(prepared_benchmarks):
    from lm_eval.tasks._yaml_loader import load_yaml

    from tokenpo.evals.tasks.configs import official_tasks_dir

    official = {
        load_yaml(p, resolve_func=False)["dataset_name"]
        for p in (official_tasks_dir() / "mmlu" / "default").glob("mmlu_*.yaml")
    }
    ours = {p.name for p in (prepared_benchmarks / "cais" / "mmlu").iterdir()}
    assert ours == official and len(ours) == 57
    first = rows(prepared_benchmarks, "cais/mmlu", "abstract_algebra", "test")[0]
    assert list(first) == ["question", "subject", "choices", "answer"]
    assert first["subject"] == "abstract_algebra" and len(first["choices"]) == 4 and first["answer"] in range(4)


def test_mmlu_answer_letter_maps_to_the_choice_index(benchmarks_dir, prepared_benchmarks):
    source = json.loads((benchmarks_dir / "mmlu" / "mmlu_test.jsonl").read_text().split("\n")[0])
    subject = source["topic"].replace(" ", "_")
    ours = rows(prepared_benchmarks, "cais/mmlu", subject, "test")[0]
    assert ours["choices"][ours["answer"]] == source[f"answer_{source['correct_answer'].lower()}"]


def test_truthfulqa_mc_targets_follow_the_authors_csv_derivation(prepared_benchmarks):
    mc = rows(prepared_benchmarks, "truthfulqa/truthful_qa", "multiple_choice", "validation")[0]
    gen = rows(prepared_benchmarks, "truthfulqa/truthful_qa", "generation", "validation")[0]
    assert gen["question"] == mc["question"] == "What happens to you if you eat watermelon seeds?"
    # CSV: best "The watermelon seeds pass through your digestive system", 5 correct, 7 incorrect answers
    assert mc["mc1_targets"]["choices"][0] == "The watermelon seeds pass through your digestive system."
    assert mc["mc1_targets"]["labels"] == [1] + [0] * 7
    assert mc["mc1_targets"]["choices"][1:] == [a + "." for a in gen["incorrect_answers"]]
    assert mc["mc2_targets"]["labels"] == [1] * 5 + [0] * 7
    assert mc["mc2_targets"]["choices"] == [a + "." for a in gen["correct_answers"] + gen["incorrect_answers"]]
    assert gen["correct_answers"][0] == "Nothing happens"  # the hub's split keeps answers unpunctuated


def test_identical_schemas_are_copied_unchanged(benchmarks_dir, prepared_benchmarks):
    source = [json.loads(line) for line in (benchmarks_dir / "gsm8k" / "test.jsonl").read_text().splitlines()]
    assert rows(prepared_benchmarks, "openai/gsm8k", "main", "test") == source
    ifeval = [json.loads(line) for line in (benchmarks_dir / "ifeval" / "input_data.jsonl").read_text().splitlines()]
    assert rows(prepared_benchmarks, "google/IFEval", "default", "train") == ifeval


def test_gpqa_keeps_every_column_without_showing_text(benchmarks_dir, prepared_benchmarks):
    import csv

    with open(benchmarks_dir / "gpqa" / "gpqa_diamond.csv", newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    ours = rows(prepared_benchmarks, "Idavidrein/gpqa", "gpqa_diamond", "train")
    # compare column names and counts only: GPQA text must never reach test output
    assert len(ours) == 198 and len(header) == 78
    assert all(list(record) == header for record in ours)


def test_malformed_record_names_file_line_and_field(tmp_path):
    source = tmp_path / "src" / "gsm8k"
    source.mkdir(parents=True)
    (source / "train.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (source / "test.jsonl").write_text('{"question": "q", "answer": "a"}\n{"question": "q"}\n')
    with pytest.raises(EvalError, match=r"test.jsonl:2: answer: missing"):
        prepare_benchmarks(tmp_path / "src", tmp_path / "out", ["gsm8k"])
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_cli_prepare_exit_codes(tmp_path, capsys, benchmarks_dir):
    assert main(["data", "prepare", "--from", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert (
        main(["data", "prepare", "--from", str(benchmarks_dir), "--out", str(tmp_path / "o"), "--only", "gsm8k,nope"])
        == 2
    )
    assert "unknown benchmark" in capsys.readouterr().err
    assert (
        main(["data", "prepare", "--from", str(benchmarks_dir), "--out", str(tmp_path / "o"), "--only", "humaneval"])
        == 0
    )
    manifest = load_manifest(tmp_path / "o")
    assert list(manifest["benchmarks"]) == ["humaneval"]
    assert (tmp_path / "o" / "lm_eval_tasks" / "humaneval" / "humaneval.yaml").is_file()
    assert set(MIRRORS) >= {"gsm8k", "mmlu", "gpqa", "truthfulqa", "ifeval", "humaneval"}
