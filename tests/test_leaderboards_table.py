"""The tidy table and the leaderboard: normalisation, headline metrics, seeds, deltas, notes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from leaderboard_helpers import make_result, write_result

from tokenpo.leaderboards.columns import Benchmark, load_columns, normalised_score
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.render import markdown
from tokenpo.leaderboards.results import load_results, parse_result_arg
from tokenpo.leaderboards.table import build_leaderboard
from tokenpo.leaderboards.tidy import TIDY_COLUMNS

MC = Benchmark("mc", "MC", ("mc_task",), ("acc,none",), 0.25)
GEN = Benchmark("gen", "Gen", ("gen_task",), ("exact_match,strict-match",), 0.0)
IFEVAL = load_columns()[[b.name for b in load_columns()].index("ifeval")]


def _scores(right: int, n: int) -> list[float]:
    return [1.0] * right + [0.0] * (n - right)


@pytest.mark.parametrize(
    ("value", "random", "expected"),
    [
        (0.25, 0.25, 0.0),  # chance on 4-way multiple choice
        (0.625, 0.25, 50.0),  # (0.625 − 0.25) / 0.75 · 100
        (0.70, 0.25, 60.0),
        (1.0, 0.25, 100.0),
        (0.10, 0.25, 0.0),  # below chance clips at 0
        (0.37, 0.0, 37.0),  # generative: just ×100
        (0.0, 0.0, 0.0),
    ],
)
def test_normalisation_hand_computed(value, random, expected):
    assert normalised_score(value, random) == pytest.approx(expected)


def test_normalisation_of_arrays_clips_elementwise():
    assert normalised_score(np.array([0.1, 0.25, 0.4, 1.0]), 0.25) == pytest.approx([0.0, 0.0, 20.0, 100.0])


def test_packaged_catalog_states_the_headline_metrics():
    catalog = {b.name: b for b in load_columns()}
    assert catalog["mmlu"].metrics == ("acc,none",) and catalog["mmlu"].random == 0.25
    assert catalog["gsm8k"].metrics == ("exact_match,strict-match",) and catalog["gsm8k"].random == 0.0
    assert catalog["gpqa"].metrics == ("acc_norm,none",) and catalog["gpqa"].random == 0.25
    assert catalog["humaneval"].metrics == ("pass@1,create_test",)
    assert catalog["sentiment"].metrics == ("positive_rate,none",) and not catalog["sentiment"].average
    assert catalog["truthfulqa"].tasks[0] == "truthfulqa_mc2" and catalog["truthfulqa"].average
    assert catalog["truthfulqa_mc1"].tasks[0] == "truthfulqa_mc1" and not catalog["truthfulqa_mc1"].average
    assert catalog["ifeval"].metrics == ("prompt_level_strict_acc,none", "inst_level_strict_acc,none")
    assert all(b.note for b in catalog.values())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"label": "X", "tasks": ["t"], "metrics": ["acc,none"], "random": 0.25, "colour": "red"},
            "x.colour: unknown key",
        ),
        (
            {"label": "X", "tasks": ["t"], "metrics": ["acc,none"], "random": True},
            "x.random: wrong type bool",
        ),
        ({"label": "X", "tasks": ["t"], "metrics": ["acc"], "random": 0.0}, "is not 'METRIC,FILTER'"),
        (
            {"label": "X", "tasks": [], "metrics": ["acc,none"], "random": 0.0},
            "x.tasks: expected a non-empty list",
        ),
        (
            {"label": "X", "tasks": ["t"], "metrics": ["acc,none"], "random": 1.0},
            "x.random: 1.0 is not in [0, 1)",
        ),
        ({"tasks": ["t"], "metrics": ["acc,none"], "random": 0.0}, "x.label: missing"),
    ],
)
def test_registry_rejects_bad_entries_naming_the_key(tmp_path, entry, message):
    import yaml

    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": {"x": entry}}))
    with pytest.raises(ResultsError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_columns(path)


def test_ifeval_headline_is_the_mean_of_prompt_and_instruction_level_strict_accuracy():
    # prompt level: 2 of 4 prompts fully followed = 0.5; instruction level: 7 of 10 instructions = 0.7
    prompt = [1, 1, 0, 0]
    instructions = [[1, 1, 1], [1, 1], [1, 0, 0], [1, 0]]
    result = make_result(
        {"ifeval": {"prompt_level_strict_acc,none": prompt * 3, "inst_level_strict_acc,none": instructions * 3}},
        "dpo",
    )
    board = build_leaderboard([result], benchmarks=[IFEVAL], n_boot=200)
    cell = board.rows[0].cells["ifeval"]
    assert cell.raw == pytest.approx(0.6)
    assert cell.score.value == pytest.approx(60.0)
    assert cell.score.how == "bootstrap" and cell.n == 12
    # 4 prompts are too few items for an interval (stats.why_no_interval): run as a smoke check, not a column
    few = make_result(
        {"ifeval": {"prompt_level_strict_acc,none": prompt, "inst_level_strict_acc,none": instructions}}, "dpo"
    )
    board = build_leaderboard([few], benchmarks=[IFEVAL], n_boot=200)
    assert board.benchmarks == [] and "ifeval" not in board.rows[0].cells
    (smoke,) = board.smoke
    assert smoke.items == 4 and smoke.raw == {"dpo (tiny-llama)": pytest.approx(0.6)}


def test_seeds_aggregate_to_mean_and_sd_of_normalised_scores():
    runs = [make_result({"mc_task": {"acc,none": _scores(k, 10)}}, "dpo", seed=s) for s, k in ((0, 5), (1, 6), (2, 7))]
    board = build_leaderboard(runs, benchmarks=[MC], n_boot=200)
    (row,) = board.rows
    # normalised: (0.5−.25)/.75 = 33.33, 46.67, 60.00 → mean 46.67, sd 13.33
    assert row.seeds == [0, 1, 2]
    assert row.cells["mc"].score.value == pytest.approx(140 / 3)
    assert row.cells["mc"].score_sd == pytest.approx(40 / 3)
    assert row.average.value == pytest.approx(140 / 3) and row.average_sd == pytest.approx(40 / 3)


def test_delta_is_paired_on_shared_items_and_matches_hand_computation():
    base = make_result(
        {
            "mc_task": {"acc,none": _scores(50, 100)},
            "gen_task": {"exact_match,strict-match": _scores(20, 100)},
        },
        "dpo",
    )
    # the candidate gets 10 more MC items right and 10 fewer generative ones
    cand = make_result(
        {
            "mc_task": {"acc,none": _scores(60, 100)},
            "gen_task": {"exact_match,strict-match": _scores(10, 100)},
        },
        "sparsepo",
    )
    board = build_leaderboard([cand, base], benchmarks=[MC, GEN], n_boot=1000)
    assert [row.method for row in board.rows] == ["dpo", "sparsepo"]  # baseline first
    row = board.rows[1]
    mc, gen = row.cells["mc"], row.cells["gen"]
    assert mc.delta.value == pytest.approx((0.6 - 0.25) / 0.75 * 100 - (0.5 - 0.25) / 0.75 * 100)  # +13.33
    assert gen.delta.value == pytest.approx(-10.0)
    assert mc.delta.how == "paired bootstrap" and mc.n_shared == 100
    # Only 10 items differ, all the same way: every resample has Δ > 0 (or < 0), so both intervals
    # exclude 0; but each row is one training run, so the intervals cover prompts only and mark nothing.
    assert mc.delta.excludes_zero and mc.delta.low > 0
    assert gen.delta.excludes_zero and gen.delta.high < 0
    for delta in (mc.delta, gen.delta, row.average_delta):
        assert delta.covers == "prompts" and delta.seeds == 1 and delta.claim_blocked == "1 training seed"
        assert not delta.significant
    assert row.average.value == pytest.approx((mc.score.value + gen.score.value) / 2)
    assert row.average_delta.value == pytest.approx((mc.delta.value + gen.delta.value) / 2)


def test_identical_runs_have_zero_delta_and_are_not_significant():
    scores = {"mc_task": {"acc,none": _scores(40, 80)}}
    board = build_leaderboard([make_result(scores, "dpo"), make_result(scores, "tdpo")], benchmarks=[MC], n_boot=200)
    delta = board.rows[1].cells["mc"].delta
    # every paired difference is 0: no interval (not the point [0, 0]), and the reason says so
    assert delta.value == 0.0 and not delta.has_interval and not delta.significant
    assert delta.no_interval == "no variation across 80 items"


def test_missing_and_mismatched_tasks_are_reported_not_averaged_away():
    base = make_result(
        {"mc_task": {"acc,none": _scores(5, 10)}, "gen_task": {"exact_match,strict-match": _scores(2, 10)}},
        "dpo",
    )
    cand = make_result({"mc_task": {"acc,none": _scores(6, 20)}, "other_task": {"acc,none": _scores(1, 4)}}, "tdpo")
    board = build_leaderboard([base, cand], benchmarks=[MC, GEN], n_boot=200)
    tdpo = board.rows[1]
    assert "gen" not in tdpo.cells and tdpo.average is None and tdpo.average_delta is None
    notes = "\n".join(board.notes)
    assert "Gen: missing for tdpo (tiny-llama)" in notes
    assert "average: tdpo (tiny-llama) lacks ['Gen']; no average shown" in notes
    assert "MC: item counts differ: dpo (tiny-llama) 10, tdpo (tiny-llama) 20" in notes
    assert "delta on the 10 shared items (of 20 and 10)" in notes
    assert "tasks not in the benchmark catalog (tidy table only): other_task" in notes
    assert tdpo.cells["mc"].n_shared == 10


def test_no_baseline_row_is_said():
    board = build_leaderboard([make_result({"mc_task": {"acc,none": _scores(5, 10)}}, "tdpo")], benchmarks=[MC])
    assert "no 'dpo' row: no deltas" in "\n".join(board.notes)


def test_stderr_fallback_without_samples(tmp_path):
    base = write_result(tmp_path / "b", {"mc_task": {"acc,none": _scores(50, 100)}}, "dpo", samples=False)
    cand = write_result(tmp_path / "c", {"mc_task": {"acc,none": _scores(70, 100)}}, "tdpo", samples=False)
    board = build_leaderboard([base, cand], benchmarks=[MC])
    cell = board.rows[1].cells["mc"]
    se_b = np.std(_scores(50, 100), ddof=1) / 10 * 100 / 0.75
    se_c = np.std(_scores(70, 100), ddof=1) / 10 * 100 / 0.75
    assert cell.score.how == "stderr" and cell.score.se == pytest.approx(se_c)
    assert cell.delta.how == "stderr" and cell.delta.se == pytest.approx(np.hypot(se_b, se_c))
    assert cell.delta.value == pytest.approx(20 / 0.75)
    assert "unpaired interval from the reported stderrs" in "\n".join(board.notes)


def test_tidy_table_has_one_line_per_run_task_metric(tmp_path):
    folder = write_result(
        tmp_path / "r",
        {
            "gen_task": {
                "exact_match,strict-match": [1, 0, 1, 1],
                "exact_match,flexible-extract": [1, 1, 1, 1],
            }
        },
        "dpo",
        seed=3,
    )
    board = build_leaderboard([folder], benchmarks=[GEN], n_boot=100)
    tidy = board.tidy
    assert list(tidy.columns) == TIDY_COLUMNS
    assert len(tidy) == 2
    strict = tidy[tidy.metric == "exact_match,strict-match"].iloc[0]
    assert (strict.model, strict.method, strict.seed, strict.task, strict.n) == (
        "tiny-llama",
        "dpo",
        3,
        "gen_task",
        4,
    )
    assert strict.value == pytest.approx(0.75) and strict.stderr == pytest.approx(np.std([1, 0, 1, 1], ddof=1) / 2)


def test_reads_our_folder_with_filters_and_per_part_scores(tmp_path):
    folder = write_result(
        tmp_path / "ours",
        {
            "gen_task": {"exact_match,strict-match": [0, 1, 1], "exact_match,flexible-extract": [1, 1, 1]},
            "ifeval": {
                "prompt_level_strict_acc,none": [1, 0],
                "inst_level_strict_acc,none": [[1, 1], [1, 0, 0]],
            },
        },
        "sparsepo",
        seed=1,
        doc_ids={"gen_task": [7, 3, 5]},
    )
    (result,) = load_results(folder / "results.json")
    assert result.run_key == ("tiny-llama", "sparsepo", 1, None)  # None: a final model, not a checkpoint
    strict = result.items[("gen_task", "exact_match,strict-match")]
    assert strict.keys == (("gen_task", 3), ("gen_task", 5), ("gen_task", 7))  # sorted by doc_id
    assert list(strict.num) == [1.0, 1.0, 0.0]
    inst = result.items[("ifeval", "inst_level_strict_acc,none")]
    assert list(inst.num) == [2.0, 1.0] and list(inst.den) == [2.0, 3.0] and inst.value == pytest.approx(0.6)
    assert not result.notes


def test_per_item_scores_that_do_not_reproduce_the_value_fall_back_with_a_note(tmp_path):
    folder = write_result(tmp_path / "r", {"mc_task": {"acc,none": [1, 0, 1, 0]}}, "dpo")
    data = json.loads((folder / "results.json").read_text())
    data["results"]["mc_task"]["acc,none"] = 0.75  # samples say 0.5
    (folder / "results.json").write_text(json.dumps(data))
    (result,) = load_results(folder)
    assert ("mc_task", "acc,none") not in result.items
    assert "per-item scores give 0.5, reported 0.75; using the reported stderr" in result.notes[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"samples/mc_task.jsonl:2: invalid JSON"),
        ('{"acc": 1}', r"samples/mc_task.jsonl:2: doc_id: missing or not an integer"),
        ('{"doc_id": 0, "acc": 1}', r"samples/mc_task.jsonl:2: doc_id 0 repeated for metric 'acc,none'"),
    ],
)
def test_bad_sample_lines_name_file_and_line(tmp_path, line, message):
    folder = write_result(tmp_path / "r", {"mc_task": {"acc,none": [1]}}, "dpo")
    samples = folder / "samples" / "mc_task.jsonl"
    samples.write_text(samples.read_text() + line + "\n")
    with pytest.raises(ResultsError, match=message):
        load_results(folder)


def test_bad_result_files(tmp_path):
    with pytest.raises(ResultsError, match="no such file or folder"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match=r"folder with no results\.json or lm-eval results_\*\.json in it or below"):
        load_results(tmp_path / "empty")
    (tmp_path / "results.json").write_text('{"results": {"t": {"acc,none": "high"}}}')
    with pytest.raises(ResultsError, match=r"results.json: results.t.acc,none: expected a number, got 'high'"):
        load_results(tmp_path / "results.json")


def test_same_run_in_two_files_merges_and_conflicts_are_errors(tmp_path):
    write_result(tmp_path / "eval", {"mc_task": {"acc,none": [1, 0] * 5}}, "dpo")
    write_result(tmp_path / "judge", {"gen_task": {"exact_match,strict-match": [1, 1] * 5}}, "dpo")
    board = build_leaderboard([tmp_path / "eval", tmp_path / "judge"], benchmarks=[MC, GEN], n_boot=50)
    assert len(board.rows) == 1 and set(board.rows[0].cells) == {"mc", "gen"}
    with pytest.raises(
        ResultsError, match="task 'mc_task' metric 'acc,none' of run tiny-llama / dpo seed 0 is also in"
    ):
        build_leaderboard([tmp_path / "eval", tmp_path / "eval"], benchmarks=[MC])


def test_method_prefix_labels_results(tmp_path):
    assert parse_result_arg("dpo=runs/x") == ("dpo", "runs/x")
    assert parse_result_arg("runs/x") == (None, "runs/x")
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert parse_result_arg(str(odd)) == (None, str(odd))  # an existing path is never split


def test_a_board_of_columns_outside_the_average_has_no_average_column():
    sentiment = [b for b in load_columns() if b.name == "sentiment"]
    rows = [make_result({"sentiment": {"positive_rate,none": _scores(k, 20)}}, m) for m, k in (("dpo", 9), ("new", 12))]
    board = build_leaderboard(rows, benchmarks=sentiment, n_boot=100)
    assert not board.has_average and all(row.average is None for row in board.rows)
    text = markdown(board)
    assert "| method | model | seeds | Positive rate |\n" in text and "average" not in text.split("- Scores")[0]
    both = [
        make_result({"sentiment": {"positive_rate,none": _scores(k, 20)}, "mc_task": {"acc,none": _scores(5, 10)}}, m)
        for m, k in (("dpo", 9), ("new", 12))
    ]
    with_mc = build_leaderboard(both, benchmarks=[MC, *sentiment], n_boot=100)
    assert with_mc.has_average and "| method | model | seeds | MC | Positive rate | average |" in markdown(with_mc)
