"""Reading real lm-evaluation-harness output (made at test time by lm-eval on tiny models)."""

from __future__ import annotations

import json

import pytest
from lmeval_output import LIMIT, SUBJECTS, TEST_BENCHMARKS

from tokenpo.harness.cli import main
from tokenpo.leaderboards.columns import normalised_score
from tokenpo.leaderboards.results import load_results
from tokenpo.leaderboards.table import build_leaderboard


def _sample_rows(folder, task):
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _paired_differences(base_dir, cand_dir) -> list[float]:
    """Per MMLU item (subject, doc_id): the candidate's acc minus the baseline's."""

    def by_item(folder):
        return {(s, row["doc_id"]): row["acc"] for s in SUBJECTS for row in _sample_rows(folder, f"tiny_mmlu_{s}")}

    base, cand = by_item(base_dir), by_item(cand_dir)
    return [cand[item] - base[item] for item in sorted(base)]


def test_reads_lmeval_output_folder_with_group_and_filters(lmeval_output):
    results = {r.model: r for r in load_results(lmeval_output)}
    assert sorted(results) == ["tiny-llama-seed0", "tiny-llama-seed1"]
    result = results["tiny-llama-seed0"]
    (results_file,) = (lmeval_output / "tiny-llama-seed0").glob("results_*.json")
    reported = json.loads(results_file.read_text())["results"]
    leaves = tuple(f"tiny_mmlu_{s}" for s in SUBJECTS)
    assert result.subtasks == {"tiny_mmlu": leaves}
    assert result.top_level_tasks == ["tiny_gsm8k", "tiny_mmlu"]
    for task in ("tiny_mmlu", *leaves, "tiny_gsm8k"):
        for key, value in reported[task].items():
            if "," in key and "_stderr" not in key:
                assert result.metrics[(task, key)].value == pytest.approx(value)
                # every metric's per-item scores were found and reproduce lm-eval's number
                assert result.items[(task, key)].value == pytest.approx(value)
    assert len(result.items[("tiny_mmlu", "acc,none")].keys) == 2 * LIMIT  # pooled subjects
    assert len(result.items[("tiny_gsm8k", "exact_match,strict-match")].keys) == LIMIT  # one filter's rows
    assert result.higher_is_better[("tiny_mmlu", "acc")] is True
    assert not result.notes


def test_leaderboard_on_lmeval_output_matches_a_hand_computation(lmeval_output):
    base_dir, cand_dir = lmeval_output / "tiny-llama-seed0", lmeval_output / "tiny-llama-seed1"
    board = build_leaderboard([f"dpo={base_dir}", f"tdpo={cand_dir}"], benchmarks=TEST_BENCHMARKS, n_boot=500)
    assert [row.method for row in board.rows] == ["dpo", "tdpo"]

    def accuracy(folder):
        rows = [row for s in SUBJECTS for row in _sample_rows(folder, f"tiny_mmlu_{s}")]
        return sum(row["acc"] for row in rows) / len(rows)

    expected = normalised_score(accuracy(cand_dir), 0.25) - normalised_score(accuracy(base_dir), 0.25)
    cell = board.rows[1].cells["tiny_mmlu"]
    assert cell.n_shared == 2 * LIMIT
    assert cell.delta.value == pytest.approx(expected)
    # The two tiny models may answer every item alike; then the Δ has no interval (stats.why_no_interval).
    if len(set(_paired_differences(base_dir, cand_dir))) == 1:
        assert cell.delta.how == "none" and cell.delta.no_interval == f"no variation across {2 * LIMIT} items"
    else:
        assert cell.delta.how == "paired bootstrap" and cell.delta.low <= cell.delta.value <= cell.delta.high
    assert board.rows[0].cells["tiny_mmlu"].raw == pytest.approx(accuracy(base_dir))


def test_regress_on_lmeval_output(lmeval_output, capsys):
    run = lmeval_output / "tiny-llama-seed0"
    assert main(["regress", "--baseline", str(run), "--candidate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "tiny_mmlu" in out and "tiny_gsm8k" in out and "paired z" in out and "PASS" in out
    # a folder holding two models is ambiguous for a two-result comparison
    assert main(["regress", "--baseline", str(lmeval_output), "--candidate", str(run)]) == 2
    assert "holds 2 results" in capsys.readouterr().err
