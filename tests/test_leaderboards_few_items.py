"""No interval and no significance where the items cannot support one (``stats.why_no_interval``),
and no column for a benchmark no row ran on enough items (a smoke check).

The quickstart evaluates one item per task; a bootstrap over one item is a point, and used to be
printed as an interval and marked significant (``-0.6 [-0.6, -0.6]*``), then as seven columns of
``+0.0 (no interval: 1 item)`` beside the one judge that carried the comparison. The pinned numbers
of the "as before" tests are what the leaderboard printed before the rule, on the same data and seed.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from leaderboard_helpers import make_result, write_result

from tokenpo.leaderboards.columns import Benchmark, load_columns
from tokenpo.leaderboards.render import markdown, render
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.stat_rules import MIN_ITEMS_FOR_INTERVAL, why_no_interval
from tokenpo.leaderboards.table import build_leaderboard

MC = Benchmark("mc", "MC", ("mc_task",), ("acc,none",), 0.25)
GEN = Benchmark("gen", "Gen", ("gen_task",), ("exact_match,strict-match",), 0.0)
PACKAGED = {b.name: b for b in load_columns()}
# IFEval's instruction level alone: a ratio metric (instructions followed / instructions per prompt)
INSTRUCTIONS = Benchmark("inst", "Instructions", ("ifeval",), ("inst_level_strict_acc,none",), 0.0)


def _scores(right: int, n: int) -> list[float]:
    return [1.0] * right + [0.0] * (n - right)


def _delta_section(text: str) -> str:
    """The markdown's Δ table (between its heading and the raw-metrics heading)."""
    return text.split("### Δ vs")[1].split("### Headline metrics")[0]


@pytest.fixture
def quickstart_board():
    """The quickstart's shape: one item per task; TruthfulQA mc2 moves by −0.6 points, GSM8K not at all."""
    results = [
        make_result({"truthfulqa_mc2": {"acc,none": [mc2]}, "gsm8k": {"exact_match,strict-match": [0.0]}}, method)
        for method, mc2 in (("dpo", 0.420), ("sparsepo", 0.414))
    ]
    return build_leaderboard(results, benchmarks=[PACKAGED["gsm8k"], PACKAGED["truthfulqa"]], n_boot=200)


# --- the rule itself --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_items", "spread", "reason"),
    [
        (1, 0.5, "1 item"),
        (MIN_ITEMS_FOR_INTERVAL - 1, 0.5, "9 items"),
        (MIN_ITEMS_FOR_INTERVAL, 0.5, None),
        (MIN_ITEMS_FOR_INTERVAL, 0.0, "no variation across 10 items"),
        (24, 1e-12, "no variation across 24 items"),  # float rounding is not variation
        (24, math.nan, "no variation across 24 items"),
        (None, 0.0, "no variation"),  # item count unknown (stderr only): only the variation test
        (None, 0.3, None),
        (1, 0.0, "1 item"),  # too few items is said first
    ],
)
def test_the_rule_names_the_reason(n_items, spread, reason):
    assert MIN_ITEMS_FOR_INTERVAL == 10
    assert why_no_interval(n_items, spread) == reason


def test_the_rule_counts_prompts_when_items_are_grouped():
    assert why_no_interval(3, 0.5, unit="prompt") == "3 prompts"
    assert why_no_interval(1, 0.5, unit="prompt") == "1 prompt"
    assert why_no_interval(24, 0.0, unit="prompt") == "no variation across 24 prompts"


@pytest.mark.parametrize("n_items", [MIN_ITEMS_FOR_INTERVAL - 1, MIN_ITEMS_FOR_INTERVAL])
def test_the_threshold_on_a_board(n_items):
    """Alternating wins and losses against the baseline: 9 items make a smoke check, 10 an interval."""
    base = make_result({"mc_task": {"acc,none": [float(i % 2) for i in range(n_items)]}}, "dpo")
    cand = make_result({"mc_task": {"acc,none": [1.0] * n_items}}, "tdpo")
    board = build_leaderboard([base, cand], benchmarks=[MC], n_boot=200)
    if n_items < MIN_ITEMS_FOR_INTERVAL:
        assert board.benchmarks == [] and [check.items for check in board.smoke] == [9]
        assert "mc" not in board.rows[1].cells
    else:
        delta = board.rows[1].cells["mc"].delta
        assert board.smoke == [] and delta.no_interval is None and delta.how == "paired bootstrap"
        assert delta.low <= delta.value <= delta.high


def test_too_few_shared_items_give_a_cell_without_interval():
    """Each row ran 12 items, but only 4 of them are the same: the column stays, its Δ has no interval."""
    base = make_result({"mc_task": {"acc,none": [float(i % 2) for i in range(12)]}}, "dpo")
    cand = make_result({"mc_task": {"acc,none": [1.0] * 12}}, "tdpo")
    cand.items[("mc_task", "acc,none")] = type(cand.items[("mc_task", "acc,none")])(
        tuple(("mc_task", i) for i in range(8, 20)), np.ones(12), np.ones(12)
    )
    delta = build_leaderboard([base, cand], benchmarks=[MC], n_boot=200).rows[1].cells["mc"].delta
    assert delta.no_interval == "4 items" and not delta.has_interval and not delta.significant


# --- one item: the quickstart ----------------------------------------------------------------
def test_one_item_tasks_are_smoke_checks_listed_with_their_raw_values(quickstart_board):
    assert quickstart_board.benchmarks == [] and all(not row.cells for row in quickstart_board.rows)
    assert [(c.benchmark.name, c.items) for c in quickstart_board.smoke] == [("gsm8k", 1), ("truthfulqa", 1)]
    truthful = quickstart_board.smoke[1]
    assert truthful.raw == {"dpo (tiny-llama)": pytest.approx(0.420), "sparsepo (tiny-llama)": pytest.approx(0.414)}
    text = markdown(quickstart_board)
    assert "### Δ vs" not in text and "*" not in text.split("Smoke checks")[0].split("- Scores are")[0]
    assert (
        "- TruthfulQA: 1 item per task, run as a smoke check, not compared "
        "(raw dpo (tiny-llama) 0.4200, sparsepo (tiny-llama) 0.4140)"
    ) in text
    assert "fewer than 10 prompts, or no variation across them" in text  # the legend states the rule


def test_smoke_checks_are_in_the_html_and_json(quickstart_board):
    html = build_html(quickstart_board)
    assert "TruthfulQA: 1 item per task, run as a smoke check, not compared" in html
    assert 'class="delta up"' not in html and 'class="delta down"' not in html
    document = json.loads(render(quickstart_board, "json"))
    assert document["rows"] == [] or all(r["benchmark"] != "truthfulqa" for r in document["rows"])
    smoke = {check["benchmark"]: check for check in document["smoke_checks"]}
    assert smoke["truthfulqa"]["items"] == 1 and smoke["truthfulqa"]["raw"]["sparsepo (tiny-llama)"] == 0.414
    tidy = list(csv.DictReader(io.StringIO(render(quickstart_board, "csv", tidy=True))))
    assert {r["task"] for r in tidy} == {"truthfulqa_mc2", "gsm8k"}  # the raw values stay in the files


def test_one_item_without_per_item_scores_is_a_smoke_check_too(tmp_path):
    """From reported stderrs (0 for one item) the normal interval was the point [v, v], marked."""
    base = write_result(tmp_path / "b", {"mc_task": {"acc,none": [1.0]}}, "dpo", samples=False)
    cand = write_result(tmp_path / "c", {"mc_task": {"acc,none": [0.0]}}, "tdpo", samples=False)
    board = build_leaderboard([base, cand], benchmarks=[MC])
    assert board.benchmarks == [] and board.smoke[0].raw == {"dpo (tiny-llama)": 1.0, "tdpo (tiny-llama)": 0.0}
    assert "-100.0" not in markdown(board)


# --- no variation ------------------------------------------------------------------------------
def test_items_all_scored_alike_give_no_variation():
    board = build_leaderboard(
        [make_result({"gen_task": {"exact_match,strict-match": [1.0] * 24}}, "dpo")], benchmarks=[GEN], n_boot=200
    )
    score = board.rows[0].cells["gen"].score
    assert score.value == pytest.approx(100.0)
    assert not score.has_interval and score.no_interval == "no variation across 24 items"


def test_every_item_moved_by_the_same_amount_gives_no_variation():
    """mc2-like probabilities: the candidate adds exactly 0.05 on each of 24 items. Both scores
    vary across items and keep their intervals; the paired differences do not."""
    base_items = np.round(np.random.default_rng(5).uniform(0.2, 0.8, 24), 2)
    base = make_result({"gen_task": {"exact_match,strict-match": base_items}}, "dpo")
    cand = make_result({"gen_task": {"exact_match,strict-match": base_items + 0.05}}, "tdpo")
    board = build_leaderboard([base, cand], benchmarks=[GEN], n_boot=200)
    cell = board.rows[1].cells["gen"]
    assert cell.delta.value == pytest.approx(5.0)
    assert not cell.delta.significant and cell.delta.no_interval == "no variation across 24 items"
    assert cell.score.how == "bootstrap" and cell.score.low < cell.score.value < cell.score.high
    assert "| tdpo | tiny-llama | +5.0 (no interval: no variation across 24 items) |" in markdown(board)


def test_ratio_metric_with_the_same_ratio_on_every_item_gives_no_variation():
    """Half the instructions followed on each of 12 prompts of 2, 4 or 6 instructions: Σ num / Σ den
    is 0.5 on every resample, though the items' counts differ."""
    prompts = [[1, 0], [1, 1, 0, 0], [1, 0, 1, 0, 1, 0]] * 4
    board = build_leaderboard(
        [make_result({"ifeval": {"inst_level_strict_acc,none": prompts}}, "dpo")], benchmarks=[INSTRUCTIONS]
    )
    score = board.rows[0].cells["inst"].score
    assert score.value == pytest.approx(50.0) and score.no_interval == "no variation across 12 items"


# --- enough varying items: their interval, from a random stream seeded by the cell's data --------------------
def test_enough_varying_items_keep_their_interval_and_mark_whichever_rows_are_on_the_board():
    """The data of test_delta_is_paired_on_shared_items_and_matches_hand_computation (100 items). Each
    bootstrap draws from a stream seeded by the board's seed and the cell's data, so the intervals are
    pinned here and stay the same with another row on the board (a model card shows the leaderboard's
    numbers)."""
    base = make_result(
        {"mc_task": {"acc,none": _scores(50, 100)}, "gen_task": {"exact_match,strict-match": _scores(20, 100)}},
        "dpo",
    )
    cand = make_result(
        {"mc_task": {"acc,none": _scores(60, 100)}, "gen_task": {"exact_match,strict-match": _scores(10, 100)}},
        "sparsepo",
    )
    other = make_result(
        {"mc_task": {"acc,none": _scores(30, 100)}, "gen_task": {"exact_match,strict-match": _scores(40, 100)}},
        "tidpo",
    )
    for results in ([cand, base], [other, cand, base]):
        board = build_leaderboard(results, benchmarks=[MC, GEN], n_boot=1000)
        row = next(r for r in board.rows if r.method == "sparsepo")
        mc, gen = row.cells["mc"], row.cells["gen"]
        exact = {"abs": 1e-9}
        assert (mc.delta.low, mc.delta.high) == pytest.approx((5.333333333333343, 22.666666666666664), **exact)
        assert (gen.delta.low, gen.delta.high) == pytest.approx((-16.0, -5.0), **exact)
        assert (mc.score.low, mc.score.high) == pytest.approx((34.63333333333337, 60.0), **exact)
        # One training seed per row: intervals of evaluation noise, no claim (the old board marked both)
        assert mc.delta.excludes_zero and gen.delta.excludes_zero
        assert not mc.delta.significant and not gen.delta.significant
        assert mc.delta.no_interval is None and gen.delta.no_interval is None
        average = (row.average_delta.low, row.average_delta.high)
        assert average == pytest.approx((-3.1708333333333343, 6.5000000000000036), **exact)
        assert row.average_delta.how == "paired bootstrap" and not row.average_delta.significant


@pytest.fixture
def mixed_board():
    """MC on 100 items (Δ +13.3 [+5.3, +22.7]) next to Gen on 24 items every one of which dropped (Δ −100)."""
    base = make_result(
        {"mc_task": {"acc,none": _scores(50, 100)}, "gen_task": {"exact_match,strict-match": [1.0] * 24}}, "dpo"
    )
    cand = make_result(
        {"mc_task": {"acc,none": _scores(60, 100)}, "gen_task": {"exact_match,strict-match": [0.0] * 24}},
        "sparsepo",
    )
    return build_leaderboard([cand, base], benchmarks=[MC, GEN], n_boot=1000)


def test_a_neighbour_without_interval_leaves_the_other_intervals_as_before(mixed_board):
    """Each cell resamples from the stream of its own data, so MC's numbers are those it has without the neighbour
    (test_enough_varying_items_keep_their_interval_and_mark_whichever_rows_are_on_the_board)."""
    mc = mixed_board.rows[1].cells["mc"]
    exact = {"abs": 1e-9}
    assert mc.delta.value == pytest.approx(13.333333333333336, **exact)
    assert (mc.delta.low, mc.delta.high) == pytest.approx((5.333333333333343, 22.666666666666664), **exact)
    assert (mc.score.low, mc.score.high) == pytest.approx((34.63333333333337, 60.0), **exact)
    assert mc.delta.excludes_zero and not mc.delta.significant  # one training seed
    assert (
        "| sparsepo | tiny-llama | +13.3 [+5.3, +22.7] (1 seed) | -100.0 (no interval: no variation across 24 items) |"
    ) in markdown(mixed_board)


def test_the_average_is_not_significant_when_any_part_lacks_an_interval(mixed_board):
    row = mixed_board.rows[1]
    assert row.cells["mc"].delta.excludes_zero and not row.cells["gen"].delta.has_interval
    assert row.average_delta.value == pytest.approx(-43.33333333333333)
    assert not row.average_delta.significant and not row.average_delta.has_interval
    assert row.average_delta.no_interval == "Gen lacks one"
    assert row.average.no_interval == "Gen lacks one"  # the average score, likewise
    assert "| -43.3 (no interval: Gen lacks one) |" in markdown(mixed_board)


def test_a_group_run_on_one_item_per_subtask_is_a_smoke_check():
    """MMLU at --limit 1: one item in each of 12 subjects makes 12 items, but 1 per task: run, not compared."""
    group = Benchmark("grp", "Group", ("grp",), ("acc,none",), 0.25)
    results = []
    for method, right in (("dpo", 3), ("sparsepo", 4)):
        result = make_result({"grp": {"acc,none": _scores(right, 12)}}, method)
        result.subtasks["grp"] = tuple(f"grp_{i}" for i in range(12))
        result.n_samples.update({f"grp_{i}": (1, 100) for i in range(12)})
        results.append(result)
    board = build_leaderboard(results, benchmarks=[group], n_boot=200)
    assert board.benchmarks == [] and [(c.benchmark.name, c.items) for c in board.smoke] == [("grp", 1)]
    assert "Group: 1 item per task, run as a smoke check" in markdown(board)
    # the same 12 items as 12 tasks' worth of 10 each would be compared
    for result in results:
        result.n_samples.update({f"grp_{i}": (10, 100) for i in range(12)})
    assert [b.name for b in build_leaderboard(results, benchmarks=[group], n_boot=200).benchmarks] == ["grp"]
