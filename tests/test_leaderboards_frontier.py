"""The reward–KL frontier: points per method family and β, their bootstrap intervals, JSON and SVG."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from leaderboard_helpers import make_result, write_result

from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.frontier import (
    KL_METRIC,
    PROBABILITY_METRIC,
    REWARD_METRIC,
    frontier_json,
    frontier_points,
    frontier_records,
    frontier_svg,
    write_frontier_json,
)
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.table import build_leaderboard

SVG = "{http://www.w3.org/2000/svg}"
MC = Benchmark("mc", "MC", ("mc_task",), ("acc,none",), 0.25)
FLAT = {"metric": "rewards/margins", "value": 0.0008, "problem": "margins stayed flat (0.0008 over the last 5 steps)"}


def _sentiment(kl, positive, method, seed=0, family=None, beta=None, probability=None, flags=None, model="gpt2"):
    metrics = {KL_METRIC: kl, REWARD_METRIC: positive}
    if probability is not None:
        metrics[PROBABILITY_METRIC] = probability
    harness = {"method_family": family, "beta": beta} if family else {}
    if flags is not None:
        harness["training_health"] = flags
    return make_result(
        {"sentiment": metrics}, method, seed, model, higher_is_better={"kl_to_ref": False}, harness=harness
    )


def test_point_is_the_seed_mean_with_intervals_over_seeds_and_prompts():
    # 2 seeds × 12 items (4 values three times); the seeds share doc_ids 0..11
    runs = [
        _sentiment([1, 2, 3, 4] * 3, [1, 0, 1, 1] * 3, "dpo", 0, "dpo", 0.1, probability=[0.9, 0.2, 0.8, 0.7] * 3),
        _sentiment([3, 2, 5, 6] * 3, [1, 1, 0, 1] * 3, "dpo", 1, "dpo", 0.1, probability=[0.7, 0.6, 0.4, 0.9] * 3),
    ]
    (point,) = frontier_points(runs, n_boot=2000)
    assert (point.task, point.model, point.family, point.beta) == ("sentiment", "gpt2", "dpo", 0.1)
    assert point.seeds == [0, 1] and point.n_items == 12 and point.methods == ["dpo"]
    assert point.kl.value == pytest.approx((2.5 + 4.0) / 2)
    assert point.reward.value == pytest.approx(0.75)
    assert point.p_positive.value == pytest.approx((0.65 + 0.65) / 2)
    for estimate in (point.kl, point.reward, point.p_positive):
        assert estimate.how == "bootstrap" and estimate.low < estimate.value < estimate.high
        assert estimate.covers == "training seeds and prompts"
    # a resample draws seed 0 or 1 (or both) and prompts: its mean KL lies within [1, 6], the seeds' extremes
    assert point.kl.low >= 1.0 and point.kl.high <= 6.0
    assert point.health == "unknown" and point.flags == []


def test_bootstrap_interval_matches_the_exact_distribution():
    # One item in ten has KL 10: a resample's mean is the number k of such items drawn, k ~ Binomial(10, 1/10):
    # P(k=0) = .349, P(k ≤ 2) = .930, P(k ≤ 3) = .987, so the 95% percentile interval is exactly [0, 3].
    (point,) = frontier_points([_sentiment([0] * 9 + [10], [1, 0] * 5, "dpo")], n_boot=2000)
    assert point.kl.value == pytest.approx(1.0)
    assert (point.kl.low, point.kl.high) == (0.0, 3.0)
    assert point.kl.covers == "prompts"  # one training seed: evaluation noise only


def test_seeds_that_disagree_item_by_item_widen_the_interval():
    """Per doc the two seeds' mean KL is 2 everywhere, so the old bootstrap (over items, after averaging the
    seeds) gave the point [2, 2]; drawing the seeds as well keeps their disagreement in the interval."""
    runs = [_sentiment([0, 0, 4, 4] * 3, [1] * 12, "dpo", 0), _sentiment([4, 4, 0, 0] * 3, [1] * 12, "dpo", 1)]
    (point,) = frontier_points(runs, n_boot=2000)
    assert point.kl.value == 2.0 and point.kl.low < 1.5 and point.kl.high > 2.5
    # every item positive: no variation, so no interval (as the leaderboard's "no variation across 12 items")
    assert (point.reward.value, point.reward.low, point.reward.high, point.reward.how) == (1.0, None, None, "none")
    assert point.p_positive is None  # not reported


def test_too_few_prompts_give_no_interval():
    (point,) = frontier_points([_sentiment([1, 2, 3, 4], [1, 0, 1, 1], "dpo")], n_boot=200)
    assert point.kl.how == "none" and point.kl.low is None and point.kl.high is None


def test_points_group_by_family_and_beta_and_fall_back_to_the_method():
    runs = [
        _sentiment([0.0] * 4, [0, 1, 0, 0], "base", None, "base", None),
        _sentiment([1.0] * 4, [1, 1, 0, 0], "dpo", 0, "dpo", 0.1),
        _sentiment([2.0] * 4, [1, 1, 1, 0], "dpo", 1, "dpo", 0.1),
        _sentiment([5.0] * 4, [1, 1, 1, 1], "dpo", 0, "dpo", 0.5),
        _sentiment([1.5] * 4, [1, 0, 0, 0], "tdpo2", 0, "tdpo2", 0.1, flags=[FLAT]),
        _sentiment([1.5] * 4, [1, 1, 0, 0], "tdpo2", 1, "tdpo2", 0.1, flags=[]),
        # labels that differ only in hyper-parameters share a family
        _sentiment([3.0] * 4, [1, 1, 0, 0], "sparsepo-learned-common", 0, "sparsepo-learned-common", 0.1),
        _sentiment([3.0] * 4, [1, 1, 1, 1], "sparsepo-lc-lr2", 1, "sparsepo-learned-common", 0.1),
        # older results without the metadata: one point per method
        _sentiment([4.0] * 4, [0, 1, 1, 1], "tidpo", 0),
        _sentiment([6.0] * 4, [1, 1, 1, 1], "tidpo", 1),
        make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo"),  # no sentiment: no point
    ]
    points = frontier_points(runs, n_boot=100)
    assert [(p.family, p.beta, p.seeds) for p in points] == [
        ("base", None, [None]),
        ("dpo", 0.1, [0, 1]),
        ("dpo", 0.5, [0]),
        ("sparsepo-learned-common", 0.1, [0, 1]),
        ("tdpo2", 0.1, [0, 1]),
        ("tidpo", None, [0, 1]),
    ]
    by_key = {(p.family, p.beta): p for p in points}
    assert by_key[("dpo", 0.1)].kl.value == pytest.approx(1.5)
    assert by_key[("dpo", 0.1)].reward.value == pytest.approx((0.5 + 0.75) / 2)
    assert by_key[("sparsepo-learned-common", 0.1)].methods == ["sparsepo-lc-lr2", "sparsepo-learned-common"]
    assert by_key[("tidpo", None)].kl.value == pytest.approx(5.0)
    assert by_key[("base", None)].is_base and by_key[("base", None)].label == "base"
    tdpo2 = by_key[("tdpo2", 0.1)]
    assert tdpo2.flagged and tdpo2.flags == [{"seed": 0} | FLAT]
    assert by_key[("dpo", 0.5)].label == "β=0.5"


def test_without_per_item_scores_the_interval_comes_from_the_stderrs(tmp_path):
    folders = [
        write_result(
            tmp_path / f"s{seed}",
            {"sentiment": {KL_METRIC: kl, REWARD_METRIC: [1, 0, 1, 0]}},
            "dpo",
            seed=seed,
            samples=False,
            higher_is_better={"kl_to_ref": False},
        )
        for seed, kl in ((0, [1, 2, 3, 4]), (1, [2, 2, 2, 2]))
    ]
    (point,) = frontier_points(folders, n_boot=100)
    se = math.sqrt((np.std([1, 2, 3, 4], ddof=1) / 2) ** 2 + 0.0) / 2  # √(se₀² + se₁²) / 2 seeds
    assert point.kl.how == "stderr" and point.kl.value == pytest.approx(2.25)
    assert point.kl.low == pytest.approx(2.25 - 1.959964 * se) and point.kl.high == pytest.approx(2.25 + 1.959964 * se)
    assert point.n_items == 4


def test_json_records_are_rounded_and_ordered(tmp_path):
    runs = [
        _sentiment(
            [1 / 3] * 12, [1, 0, 0] * 4, "tdpo2", 0, "tdpo2", 0.05, probability=[0.1, 0.2, 0.3] * 4, flags=[FLAT]
        ),
        _sentiment([0.0] * 12, [0, 0, 1] * 4, "base", None, "base", None),
        _sentiment([2.0] * 12, [1, 1, 0] * 4, "dpo", 0, "dpo", 0.1, flags=[]),
    ]
    points = frontier_points(runs[::-1], n_boot=50)  # the order of the input does not matter
    records = json.loads(frontier_json(points))
    assert [(r["family"], r["beta"]) for r in records] == [("base", None), ("dpo", 0.1), ("tdpo2", 0.05)]
    tdpo2 = records[2]
    assert set(tdpo2) == {
        "task",
        "model",
        "family",
        "beta",
        "base",
        "methods",
        "seeds",
        "n_items",
        "confidence",
        "kl_to_ref",
        "positive_rate",
        "p_positive",
        "health",
        "health_flags",
    }
    # every sample at KL 1/3: no variation, no interval
    assert tdpo2["kl_to_ref"] == {"value": 0.3333, "low": None, "high": None, "ci": "none", "covers": "prompts"}
    assert tdpo2["positive_rate"]["value"] == 0.3333 and tdpo2["p_positive"]["value"] == 0.2
    assert tdpo2["health"] == "flagged" and tdpo2["health_flags"] == [{"seed": 0} | FLAT]
    assert tdpo2["seeds"] == [0] and tdpo2["n_items"] == 12 and tdpo2["confidence"] == 0.95
    assert records[0]["base"] is True and records[0]["p_positive"] is None and records[0]["health"] == "unknown"
    assert records[1]["health"] == "ok"
    assert frontier_records(points) == records
    path = write_frontier_json(points, tmp_path / "out" / "frontier.json")
    assert json.loads(path.read_text()) == records


def _frontier_runs():
    """Five points on 12 prompts each (4 values three times)."""
    return [
        _sentiment([0.0, 0.1, 0.0, 0.1] * 3, [0, 1, 0, 0] * 3, "base", None, "base", None),
        _sentiment([1, 2, 1, 2] * 3, [1, 1, 0, 0] * 3, "dpo", 0, "dpo", 0.1),
        _sentiment([4, 5, 6, 5] * 3, [1, 1, 1, 0] * 3, "dpo", 0, "dpo", 0.05),
        _sentiment([2, 2, 3, 3] * 3, [1, 1, 1, 0] * 3, "sparsepo", 0, "sparsepo-learned-common", 0.1),
        _sentiment([3, 3, 4, 4] * 3, [1, 1, 1, 1] * 3, "sparsepo", 1, "sparsepo-learned-common", 0.1),
        _sentiment([0.1, 0.2, 0.1, 0.1] * 3, [0, 1, 0, 0] * 3, "tidpo", 0, "tidpo", 0.1, flags=[FLAT]),
    ]


def test_svg_is_xml_with_a_marker_and_error_bars_per_point():
    points = frontier_points(_frontier_runs(), n_boot=200)
    assert len(points) == 5
    svg = frontier_svg(points)
    root = ET.fromstring(svg)  # standalone: parses as XML on its own
    assert root.tag == f"{SVG}svg" and root.find(f"{SVG}style") is not None

    def with_class(name):
        return [e for e in root.iter() if name in (e.get("class") or "").split()]

    markers = with_class("point")
    assert len(markers) == 5
    assert [e.tag for e in markers].count(f"{SVG}path") == 1  # the base model is a diamond
    assert len(with_class("errorbar")) == 2 * 5
    assert {e.get("class") for e in with_class("errorbar")} == {"errorbar x", "errorbar y"}
    labels = [e.text for e in with_class("pointlabel")]
    assert sorted(labels) == sorted(["base", "β=0.1", "β=0.05", "β=0.1", "β=0.1"])
    # one joining line per family with several points (dpo: β 0.1 and 0.05), in order of KL
    (join,) = with_class("join")
    xs = [float(pair.split(",")[0]) for pair in join.get("points").split()]
    assert xs == sorted(xs) and len(xs) == 2
    legend = " ".join(e.text or "" for e in with_class("legend"))
    assert "tidpo (training flagged)" in legend and "base model" in legend and "dpo" in legend
    tidpo = next(e for e in markers if "tidpo" in e.find(f"{SVG}title").text)
    assert tidpo.get("fill") == "#fff"  # hollow
    assert "training flagged: margins stayed flat" in tidpo.find(f"{SVG}title").text
    colours = {e.get("stroke") for e in markers}
    assert len(colours) == 4  # base, dpo (two points), sparsepo, tidpo: each family its own colour
    # error bars span the intervals: the sparsepo point's horizontal bar covers its KL interval
    sparsepo = next(p for p in points if p.family == "sparsepo-learned-common")
    assert sparsepo.kl.low < sparsepo.kl.value < sparsepo.kl.high


def test_svg_needs_one_task_and_model():
    points = frontier_points(
        [_sentiment([1, 2], [1, 0], "dpo", model="a"), _sentiment([1, 2], [1, 0], "dpo", model="b")], n_boot=20
    )
    with pytest.raises(ValueError, match="several tasks or models"):
        frontier_svg(points)
    assert ET.fromstring(frontier_svg(points, model="b")) is not None
    with pytest.raises(ValueError, match="no points"):
        frontier_svg([])


def test_bad_options():
    with pytest.raises(ResultsError, match="confidence"):
        frontier_points([], confidence=1.0)
    with pytest.raises(ResultsError, match="bootstrap"):
        frontier_points([], n_boot=5)
    assert frontier_points([make_result({"mc_task": {"acc,none": [1]}}, "dpo")]) == []


def test_report_draws_the_frontier_with_a_table():
    results = [make_result({"mc_task": {"acc,none": [1, 0, 1]}}, "dpo"), *_frontier_runs()]
    board = build_leaderboard(results, benchmarks=[MC], n_boot=50)
    html = build_html(board, [])
    section = html[html.index('<section id="frontier"') :]
    section = section[: section.index("</section>")]
    (svg,) = re.findall(r"<svg.*?</svg>", section, flags=re.S)
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}style") is None  # inline: the page has the styles
    assert len([e for e in root.iter() if "point" in (e.get("class") or "").split()]) == 5
    table = section[section.index('<table class="stats frontier">') :]
    assert table.count("<tr>") == 1 + 5
    assert "training flagged" in table and "margins stayed flat" in table
    assert table.count("<td>front</td>") >= 1
    # a board without sentiment results has no frontier section
    plain = build_leaderboard([make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo")], benchmarks=[MC], n_boot=20)
    assert 'id="frontier"' not in build_html(plain, [])


# --- one number, one interval: the frontier's positive rate is the leaderboard's ---------------------------
def test_the_frontier_and_the_leaderboard_give_one_positive_rate_one_interval():
    """The quickstart's base model had 41.7 [31.2, 51.0] in the leaderboard and 0.417 [0.312, 0.500] in the
    frontier: two bootstraps of one positive rate, from streams named by the row and by the point. Both
    are now ``Intervals.bootstrapped`` on the same panel, its prompts drawn from the stream of its data:
    the leaderboard's interval is the frontier's × 100 (its normalisation with a random score of 0).

    24 openings × 4 samples; the base model's first 10 openings have all 4 samples positive, none of the
    others any: 40 of 96, 41.7 %."""
    prompt_ids = {"sentiment": [i // 4 for i in range(96)]}
    base_positive = [1.0] * 40 + [0.0] * 56
    dpo_positive = [1.0] * 40 + [1.0, 0.0] * 28  # and every other sample after: 68 of 96
    results = [
        make_result(
            {"sentiment": {KL_METRIC: [0.0] * 96, REWARD_METRIC: base_positive}},
            "base",
            None,
            higher_is_better={"kl_to_ref": False},
            harness={"method_family": "base"},
            prompt_ids=prompt_ids,
        ),
        make_result(
            {"sentiment": {KL_METRIC: [0.5, 1.5] * 48, REWARD_METRIC: dpo_positive}},
            "dpo",
            0,
            higher_is_better={"kl_to_ref": False},
            harness={"method_family": "dpo", "beta": 0.1},
            prompt_ids=prompt_ids,
        ),
    ]
    board = build_leaderboard(results, baseline="dpo", n_boot=2000)
    points = {p.family: p for p in frontier_points(results, n_boot=board.n_boot, seed=board.seed)}
    for row in board.rows:
        cell = row.cells["sentiment"].score
        point = points[row.method].reward
        assert cell.value == pytest.approx(100 * point.value)
        assert (cell.low, cell.high) == pytest.approx((100 * point.low, 100 * point.high), rel=1e-12)
        assert cell.covers == point.covers == "prompts"
    assert points["base"].reward.value == pytest.approx(40 / 96)
    assert points["dpo"].reward.value == pytest.approx(68 / 96)
    # The base model's positive openings k ~ Binomial(24, 10/24): P(k ≤ 4) = 0.009 < 0.025 < P(k ≤ 5) = 0.028
    # and P(k ≤ 14) = 0.968 < 0.975 < P(k ≤ 15) = 0.988: its interval is 5 to 15 of the 24 openings.
    base = points["base"].reward
    assert (base.low, base.high) == pytest.approx((5 / 24, 15 / 24))
    # the base model's KL to itself is 0 on every sample: no interval, in the frontier as in a leaderboard
    assert points["base"].kl.how == "none" and points["base"].kl.low is None
    # the report shows the same numbers in both tables
    html = build_html(board, [])
    assert f"[{base.low:.3f}, {base.high:.3f}]" in html
    assert f"[{100 * base.low:.1f}, {100 * base.high:.1f}]" in html


# --- the chart: no marker on an axis label -------------------------------------------------------------
def _box(element: ET.Element) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a marker (with its stroke) or of a tick or axis label (its glyphs, generously:
    0.6 em a character, from 0.8 em above the baseline to 0.25 em below)."""
    tag = element.tag.removeprefix(SVG)
    if tag == "circle":
        x, y, r = (float(element.get(k)) for k in ("cx", "cy", "r"))
        return x - r - 0.75, y - r - 0.75, x + r + 0.75, y + r + 0.75
    if tag == "path":
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", element.get("d"))]
        xs, ys = numbers[0::2], numbers[1::2]
        return min(xs) - 0.75, min(ys) - 0.75, max(xs) + 0.75, max(ys) + 0.75
    size = 10.0 if "tick" in element.get("class") else 11.0
    width, anchor = 0.6 * size * len(element.text), element.get("text-anchor")
    transform = element.get("transform")
    if transform:  # the y axis's label: translate(X Y) rotate(-90), centred on (X, Y), glyphs to the left
        x, y = (float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", transform)[:2])
        return x - 0.8 * size, y - width / 2, x + 0.25 * size, y + width / 2
    x, y = float(element.get("x")), float(element.get("y"))
    left = x - width if anchor == "end" else x - width / 2 if anchor == "middle" else x
    return left, y - 0.8 * size, left + width, y + 0.25 * size


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _covered_labels(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    classes = {e: (e.get("class") or "").split() for e in root.iter()}
    markers = [e for e, names in classes.items() if "point" in names]
    labels = [e for e, names in classes.items() if {"tick", "axis"} & set(names)]
    return [label.text for marker in markers for label in labels if _overlap(_box(marker), _box(label))]


@pytest.mark.parametrize(
    ("base_positive", "where"),
    [
        ([0.0] * 12, "at KL 0 and the lowest positive rate: the corner, on the first tick of both axes"),
        ([1.0] * 4 + [0.0] * 6, "at KL 0 and a positive rate of 0.4, on a tick of the y axis"),
    ],
)
def test_no_marker_covers_an_axis_label(monkeypatch, base_positive, where):
    """The quickstart's base model sits at KL 0, on the y axis, and its diamond covered the y axis's tick
    labels. The plot's data range is widened by ``SCATTER_PAD`` pixels on each side, so every marker lies
    inside the axes; without the padding (the old chart) the same data put the diamond on a label."""
    from tokenpo.leaderboards import svg

    runs = [
        _sentiment([0.0] * len(base_positive), base_positive, "base", None, "base", None),
        _sentiment([1, 2, 1, 2] * 3, [1, 1, 0, 1] * 3, "dpo", 0, "dpo", 0.1),
        _sentiment([4, 5, 6, 5] * 3, [1, 1, 1, 0] * 3, "sparsepo", 0, "sparsepo", 0.1),
    ]
    points = frontier_points(runs, n_boot=200)
    assert _covered_labels(frontier_svg(points)) == [], where
    monkeypatch.setattr(svg, "SCATTER_PAD", 0)
    assert _covered_labels(frontier_svg(points)) != [], "the check finds the old chart's collision"
