"""Training health in the leaderboard: flagged methods are marked, listed last, and explained."""

from __future__ import annotations

import csv
import io
import json

import pytest
from leaderboard_helpers import make_result, write_result

from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.render import render
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.results import load_results
from tokenpo.leaderboards.table import build_leaderboard

MC = Benchmark("mc", "MC", ("mc_task",), ("acc,none",), 0.25)
FLAT = {"metric": "rewards/margins", "value": 0.0008, "problem": "margins stayed flat (0.0008 over the last 5 steps)"}
NAN_LOSS = {"metric": "loss", "value": float("nan"), "problem": "loss became NaN at step 12"}


def _mc(right: int, method: str, seed: int = 0, model: str = "tiny-llama", flags=None):
    harness = {} if flags is None else {"training_health": flags}
    return make_result(
        {"mc_task": {"acc,none": [1] * right + [0] * (20 - right)}}, method, seed, model, harness=harness
    )


@pytest.fixture
def board():
    results = [
        _mc(10, "dpo", flags=[]),
        _mc(19, "sparsepo", seed=0, flags=[FLAT]),  # the best score, but it did not train
        _mc(19, "sparsepo", seed=1, flags=[]),
        _mc(12, "tdpo", flags=[]),
        _mc(11, "tidpo"),  # health unknown: ranked as before
        _mc(18, "ipo", flags=[NAN_LOSS]),
        _mc(10, "dpo", model="zz-other", flags=[]),
        _mc(20, "sparsepo", model="zz-other", flags=[FLAT]),
        _mc(11, "tdpo", model="zz-other", flags=[]),
    ]
    return build_leaderboard(results, benchmarks=[MC], n_boot=50)


def test_flagged_rows_come_after_the_ranked_rows_of_their_model(board):
    order = [(row.model, row.method) for row in board.rows]
    assert order == [
        ("tiny-llama", "dpo"),
        ("tiny-llama", "tdpo"),  # 12/20
        ("tiny-llama", "tidpo"),  # 11/20, health unknown
        ("tiny-llama", "sparsepo"),  # flagged 19/20: after the ranked rows, ahead of the lower flagged one
        ("tiny-llama", "ipo"),  # flagged 18/20
        ("zz-other", "dpo"),
        ("zz-other", "tdpo"),
        ("zz-other", "sparsepo"),
    ]
    rows = {(row.model, row.method): row for row in board.rows}
    sparsepo = rows[("tiny-llama", "sparsepo")]
    assert sparsepo.flagged and sparsepo.health_status == "flagged"
    assert sparsepo.health == {0: [FLAT]}  # seed 1 was checked and healthy
    assert rows[("tiny-llama", "tdpo")].health_status == "ok" and not rows[("tiny-llama", "tdpo")].health
    assert rows[("tiny-llama", "tidpo")].health_status == "unknown" and not rows[("tiny-llama", "tidpo")].flagged
    # deltas of flagged rows are still computed: 19/20 vs 10/20 is +60 normalised points
    assert sparsepo.cells["mc"].delta.value == pytest.approx(60.0)
    assert not any(row.baseline_flagged for row in board.rows)


def test_markdown_marks_flagged_methods_and_notes_every_flag(board):
    text = render(board, "md")
    table = text.split("### Δ")[0]
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[0] for line in lines] == [
        "| dpo (baseline)",
        "| tdpo",
        "| tidpo",
        "| ⚠ sparsepo",
        "| ⚠ ipo",
        "| dpo (baseline)",
        "| tdpo",
        "| ⚠ sparsepo",
    ]
    assert "| ⚠ sparsepo | tiny-llama | 0,1 | 93.3 ± 0.0 | 93.3 ± 0.0 |" in table  # (0.95 − .25) / .75
    assert "| ⚠ sparsepo | tiny-llama | +60.0 [" in text  # the Δ table marks it too
    notes = text.split("Notes:")[1]
    assert (
        "- ⚠ training health: tiny-llama / sparsepo seed 0: rewards/margins = 0.0008: "
        "margins stayed flat (0.0008 over the last 5 steps)"
    ) in notes
    assert "- ⚠ training health: tiny-llama / ipo seed 0: loss = nan: loss became NaN at step 12" in notes
    assert "- ⚠ sparsepo (tiny-llama): training flagged; listed after the ranked rows" in notes
    assert "tiny-llama / sparsepo seed 1" not in notes  # healthy seed: no note
    assert "tidpo" not in notes and "tdpo" not in notes  # unknown and healthy rows: no note
    assert "the baseline's training was flagged" not in text


def test_csv_and_json_carry_the_health(board):
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    by_method = {(r["model"], r["method"]): r for r in rows if r["benchmark"] == "mc"}
    assert by_method[("tiny-llama", "tdpo")]["health"] == "ok"
    assert by_method[("tiny-llama", "tidpo")]["health"] == "unknown"
    assert by_method[("tiny-llama", "tidpo")]["health_flags"] == ""
    flagged = by_method[("tiny-llama", "sparsepo")]
    assert flagged["health"] == "flagged"
    assert flagged["health_flags"] == (
        "seed 0: rewards/margins = 0.0008: margins stayed flat (0.0008 over the last 5 steps)"
    )
    document = json.loads(render(board, "json"))
    records = {(r["model"], r["method"], r["benchmark"]): r for r in document["rows"]}
    assert records[("tiny-llama", "sparsepo", "mc")]["health"] == "flagged"
    assert records[("tiny-llama", "sparsepo", "mc")]["health_flags"] == [{"seed": 0} | FLAT]
    assert records[("tiny-llama", "sparsepo", "average")]["health_flags"] == [{"seed": 0} | FLAT]
    # a NaN value is null in JSON (the problem says it); the document stays strict JSON
    assert records[("tiny-llama", "ipo", "mc")]["health_flags"] == [
        {"seed": 0, "metric": "loss", "value": None, "problem": "loss became NaN at step 12"}
    ]
    assert records[("tiny-llama", "tidpo", "mc")]["health_flags"] == []
    assert records[("tiny-llama", "tdpo", "mc")]["baseline_flagged"] is False


def test_html_shows_a_badge_with_the_problems(board):
    html = build_html(board, [])
    table = html[html.index('<table class="leaderboard">') : html.index("</table>")]
    rows = table.split("<tr")[2:]  # after the header row
    assert [('class="flagged"' in row) for row in rows] == [False, False, False, True, True, False, False, True]
    assert "⚠ training flagged" in rows[3] and "margins stayed flat (0.0008 over the last 5 steps)" in rows[3]
    assert "seed 0: rewards/margins = 0.0008" in rows[3]  # two seeds: the badge names the one flagged
    assert "training flagged" not in rows[2]  # unknown health: no badge
    bars = html[html.index('id="benchmarks"') :]
    assert "⚠ sparsepo" in bars


def test_a_flagged_baseline_stays_first_and_is_said(tmp_path):
    results = [_mc(10, "dpo", flags=[FLAT]), _mc(15, "tdpo", flags=[]), _mc(12, "tidpo", flags=[])]
    board = build_leaderboard(results, benchmarks=[MC], n_boot=50)
    assert [row.method for row in board.rows] == ["dpo", "tdpo", "tidpo"]
    assert board.rows[0].flagged and board.rows[0].is_baseline
    assert all(row.baseline_flagged for row in board.rows[1:])
    assert board.rows[1].cells["mc"].delta.value == pytest.approx(100 / 3)  # still computed
    text = render(board, "md")
    assert "| ⚠ dpo (baseline) | tiny-llama |" in text
    assert "### Δ vs dpo (normalised points, 95% CI) — ⚠ the baseline's training was flagged" in text
    assert (
        "⚠ baseline dpo (tiny-llama) is flagged by training health: the deltas against it are computed, "
        "but against a baseline whose training was flagged"
    ) in text
    html = build_html(board, [])
    # tdpo: MC and average; one training seed per row, so no claim (flat), and the ⚠ of the baseline
    assert html.count('<span class="delta flat">⚠ Δ +33.3 [') == 2
    assert "⚠ training flagged" in html.split("</tr>")[1]  # the baseline row (after the header row) has the badge
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert {r["method"]: r["baseline_flagged"] for r in rows if r["benchmark"] == "mc"} == {
        "dpo": "False",
        "tdpo": "True",
        "tidpo": "True",
    }


def test_health_is_read_from_result_folders_and_checked(tmp_path):
    write_result(tmp_path / "dpo", {"mc_task": {"acc,none": [1, 0]}}, "dpo", harness={"training_health": []})
    write_result(
        tmp_path / "new",
        {"mc_task": {"acc,none": [1, 1]}},
        "sparsepo",
        harness={"training_health": [FLAT], "method_family": "sparsepo-learned-common", "beta": 0.1},
    )
    (result,) = load_results(tmp_path / "new")
    assert result.training_health == [FLAT]
    assert (result.family, result.beta) == ("sparsepo-learned-common", 0.1)
    board = build_leaderboard([tmp_path / "new", tmp_path / "dpo"], benchmarks=[MC], n_boot=20)
    assert [(row.method, row.flagged) for row in board.rows] == [("dpo", False), ("sparsepo", True)]
    for harness, message in (
        ({"training_health": {"flags": []}}, r"harness.training_health: expected a list of flags, got dict"),
        ({"training_health": [{"metric": "loss", "value": 1}]}, r"harness.training_health\[0\].problem: missing"),
        ({"training_health": [{"problem": "x", "value": "high"}]}, r"training_health\[0\].value: expected a number"),
        ({"beta": "0.1"}, r"harness.beta: expected a number or null, got '0.1'"),
        ({"method_family": 3}, r"harness.method_family: expected a string, got 3"),
    ):
        write_result(tmp_path / "bad", {"mc_task": {"acc,none": [1]}}, "x", harness=harness)
        with pytest.raises(ResultsError, match=message):
            load_results(tmp_path / "bad")


def test_results_without_health_render_as_before():
    board = build_leaderboard([_mc(10, "dpo"), _mc(14, "tdpo")], benchmarks=[MC], n_boot=20)
    text = render(board, "md")
    assert "⚠" not in text and "training health" not in text
    assert {row.health_status for row in board.rows} == {"unknown"}
    assert "training flagged" not in build_html(board, [])
