"""The HTML report: its parts, its input checks, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from leaderboard_helpers import make_result, write_run
from report_demo import CHROMIUM, build_demo_report, chromium_page

from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.frontier import KL_METRIC, REWARD_METRIC, pareto_front
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.runs import load_run
from tokenpo.leaderboards.svg import nice_ticks
from tokenpo.leaderboards.table import build_leaderboard

MC = Benchmark("mc", "MC", ("mc_task",), ("acc,none",), 0.25)


def test_pareto_front_keeps_runs_no_other_beats_on_both_counts():
    points = [(1.0, 0.2), (2.0, 0.6), (3.0, 0.5), (4.0, 0.9), (2.5, 0.6), (0.5, 0.1)]
    # (3.0, 0.5) is beaten by (2.0, 0.6); (2.5, 0.6) ties (2.0, 0.6) on reward at a higher KL
    assert pareto_front(points) == [(0.5, 0.1), (1.0, 0.2), (2.0, 0.6), (4.0, 0.9)]


def test_nice_ticks():
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.12, 0.93) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(5, 5) == pytest.approx([5.0, 5.2, 5.4, 5.6, 5.8, 6.0])  # a flat series still gets an axis


def test_token_pictures_shade_by_score_and_decode_byte_level_tokens(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    row = {
        "example": 0,
        "side": "chosen",
        "method": "tidpo",
        "tokens": ["Hello", "Ġworld", "Ċ", "ĠcafÃ©", "Ã"],
        "scores": {"weight": [2.0, 1.0, 0.0, 0.5, 1.0]},
    }
    (run / "token_scores.jsonl").write_text(json.dumps(row) + "\n")
    board = build_leaderboard([make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo")], benchmarks=[MC], n_boot=20)
    html = build_html(board, [load_run(run)])
    spans = re.findall(r'<span class="tok" style="background:rgba\(0,158,115,([0-9.]+)\)"[^>]*>([^<]*)</span>', html)
    # "Ã" alone is the first byte of a two-byte character: shown as it is
    assert spans == [("1.00", "Hello"), ("0.50", " world"), ("0.00", "⏎"), ("0.25", " café"), ("0.50", "Ã")]
    assert "exact zeros" in html and "20.0%" in html  # one of five tokens has weight 0


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("metrics.jsonl", {"loss": 0.7}, r"metrics.jsonl:1: step: missing or not an integer"),
        (
            "token_scores.jsonl",
            {
                "example": 0,
                "side": "chosen",
                "method": "m",
                "tokens": ["a", "b"],
                "scores": {"weight": [1.0]},
            },
            r"token_scores.jsonl:1: scores.weight: 1 values for 2 tokens",
        ),
        (
            "token_scores.jsonl",
            {"example": 0, "side": "winner", "method": "m", "tokens": [], "scores": {"w": []}},
            r"token_scores.jsonl:1: side: expected 'chosen' or 'rejected'",
        ),
    ],
)
def test_bad_run_files_name_file_line_and_field(tmp_path, file, line, message):
    (tmp_path / file).write_text(json.dumps(line) + "\n")
    with pytest.raises(ResultsError, match=message):
        load_run(tmp_path)


def test_frontier_without_metadata_has_one_point_per_method(tmp_path):
    results = [make_result({"mc_task": {"acc,none": [1, 0, 1]}}, "dpo")]
    for method, kl, reward in (("dpo", 4.0, 0.6), ("sparsepo", 3.0, 0.7), ("sparsepo", 6.0, 0.65)):
        results.append(
            make_result(
                {"imdb": {REWARD_METRIC: [reward] * 12, KL_METRIC: [kl] * 12}},
                method,
                seed=int(kl),
                model="gpt2-imdb",
            )
        )
    board = build_leaderboard(results, benchmarks=[MC], n_boot=20)
    html = build_html(board, [])
    frontier = html[html.index('id="frontier"') :]
    # no method_family / beta: the two sparsepo seeds are one point at their mean; every prompt scores alike
    # within a seed, so the interval is the seeds' spread (a resample draws seed 3 twice, 6 twice, or both)
    assert frontier.count('<circle class="point"') == 2
    assert "sparsepo β ?: KL 4.5 [3, 6], positive rate 0.675 [0.65, 0.7]" in frontier
    assert "imdb: positive rate vs KL (gpt2-imdb)" in frontier
    assert frontier.count('<polyline class="join"') == 0  # one point per family: nothing to join


def test_report_section_for_training_curves(tmp_path):
    runs = [load_run(write_run(tmp_path / "SYNTHETIC-dpo", "dpo", steps=10))]
    board = build_leaderboard([make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo")], benchmarks=[MC], n_boot=20)
    html = build_html(board, runs)
    curves = html[html.index('id="training"') :]
    assert "SYNTHETIC-dpo (dpo)" in curves
    for key in ("loss", "rewards/margins", "rewards/accuracies", "grad_norm"):
        assert f'aria-label="{key}"' in curves
    assert curves.count('<polyline class="series"') == 6  # one run × six curves it logged


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Chromium not installed at {CHROMIUM} (.ci/install-browser installs it)"
)
def test_report_in_headless_chromium(tmp_path, lmeval_output, tiny_tokenizer):
    report = build_demo_report(tmp_path / "demo", lmeval_output, tiny_tokenizer)
    problems, requests = [], []
    with chromium_page(tmp_path / "profile") as page:  # fresh profile
        page.on("console", lambda message: message.type in ("error", "warning") and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri(), wait_until="load")

        table = page.locator("table.leaderboard")
        assert table.is_visible()
        assert table.locator("tbody tr").count() == 2
        assert "baseline" in table.locator("tbody tr").first.inner_text()
        charts = page.locator("svg.chart")
        # the tiny models score no better than chance on both benchmarks: a line each and one for the
        # average, no chart of bare axes; 1 frontier; 12 curves (the cap)
        kinds = {"bars": 0, "scatter": 1, "lines": 12}
        for kind, count in kinds.items():
            assert page.locator(f"svg.chart.{kind}").count() == count, kind
        zero = page.locator("#benchmarks ul.zero li")
        assert zero.count() == 3 and "GSM8K (task tiny_gsm8k, metric exact_match): every model scored 0" in (
            zero.nth(1).inner_text()
        )
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            assert chart.is_visible() and box["width"] > 300 and box["height"] > 200
            assert chart.locator("rect.bar, polyline, circle").count() > 0
        # 3 families × 3 β + the base model, each with its interval bars
        assert page.locator("svg.chart.scatter .point").count() == 10
        assert page.locator("svg.chart.scatter .errorbar").count() == 20
        assert page.locator("#masks table tbody tr").count() == 3
        shaded = page.locator(".tok").evaluate_all(
            "spans => spans.filter(s => getComputedStyle(s).backgroundColor !== 'rgba(0, 0, 0, 0)').length"
        )
        assert shaded > 50
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
    assert problems == []
    assert requests == [report.as_uri()]  # the page fetched nothing but itself
    assert screenshot.stat().st_size > 50_000
    if os.environ.get("HARNESS_REPORT_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["HARNESS_REPORT_SCREENSHOT"])


def test_a_benchmark_every_model_scored_0_on_gets_a_line_not_an_empty_chart():
    """The quickstart drew four charts of bare axes. MC: 4 and 2 of 20 right, below the 25 % chance of four
    choices, normalise to 0 for both models; Gen, 10 and 6 of 20, gets its chart; the average is not 0."""
    gen = Benchmark("gen", "Gen", ("gen_task",), ("exact_match,strict-match",), 0.0)
    results = [
        make_result(
            {
                "mc_task": {"acc,none": [1] * right_mc + [0] * (20 - right_mc)},
                "gen_task": {"exact_match,strict-match": [1] * right_gen + [0] * (20 - right_gen)},
            },
            method,
        )
        for method, right_mc, right_gen in (("dpo", 4, 10), ("sparsepo", 2, 6))
    ]
    board = build_leaderboard(results, benchmarks=[MC, gen], n_boot=200)
    assert [row.cells["mc"].score.value for row in board.rows] == [0.0, 0.0]
    html = build_html(board, [])
    section = html[html.index('<section id="benchmarks"') :]
    section = section[: section.index("</section>")]
    titles = re.findall(r'<svg class="chart bars"[^>]*aria-label="([^"]*)"', section)
    assert titles == ["Gen (exact_match)", "Average"]  # averages (0 + 50) / 2 = 25 and (0 + 30) / 2 = 15
    assert section.count("every model scored 0") == 1
    assert "MC (task mc_task, metric acc): every model scored 0 (normalised: no better than random guessing)" in section


def _token_scores_run(folder, method_block: str, masks: dict[str, list[float]]):
    """A run folder with one SparsePO pair in token_scores.jsonl and the config.yaml the trainer writes."""
    folder.mkdir()
    (folder / "config.yaml").write_text(f"name: {folder.name}\nmethod:\n{method_block}")
    rows = [
        {
            "example": 0,
            "side": side,
            "method": "sparsepo",
            "tokens": ["Ġgood", "Ġfilm"],
            "scores": {"logratio": [0.5, -0.25], **masks},
        }
        for side in ("chosen", "rejected")
    ]
    (folder / "token_scores.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_run(folder)


def test_a_common_mask_head_gets_one_mask_picture(tmp_path):
    """heads: common trains one mask for the reward and the KL term: the trainer logs it as mask_u and as
    mask_d, the same numbers. One picture per pair says so; independent heads keep their two."""
    common = _token_scores_run(
        tmp_path / "sparsepo-common",
        "  name: sparsepo\n  mask: learned\n  heads: common\n",
        {"mask_u": [0.8, 0.0], "mask_d": [0.8, 0.0]},
    )
    independent = _token_scores_run(
        tmp_path / "sparsepo-independent",
        "  name: sparsepo\n  mask: learned\n  heads: independent\n",
        {"mask_u": [0.8, 0.0], "mask_d": [0.2, 0.4]},
    )
    assert (common.common_mask, independent.common_mask) == (True, False)
    board = build_leaderboard([make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo")], benchmarks=[MC], n_boot=20)
    html = build_html(board, [common, independent])
    section = html[html.index('<section id="tokens"') :]
    common_part, independent_part = section.split("<h3>")[1:]
    heads = re.findall(r'<div class="pairhead">example 0 · (.*?) \(darkest', common_part)
    assert heads == ["logratio", "mask (m_u = m_d)"]
    assert "One common mask serves both the reward and the KL term" in common_part
    assert common_part.count('<div class="tokens chosen">') == 2  # logratio and the one mask
    assert re.findall(r'<div class="pairhead">example 0 · (.*?) \(darkest', independent_part) == [
        "logratio",
        "mask_u",
        "mask_d",
    ]
    assert "One common mask" not in independent_part
    # the statistics table names the common mask once: its 0.8 and 0.0 on either side, mean 0.400
    assert common_part.count("<tr><td>mask (m_u = m_d)</td><td>0.400 / 0.400</td><td>50.0%</td>") == 1
    assert "<td>mask_d</td>" not in common_part


@pytest.mark.parametrize(
    ("method_block", "expected"),
    [
        ("  name: sparsepo\n  mask: activation\n  heads: independent\n", True),  # activation masks are one
        ("  name: sparsepo\n  mask: learned\n", True),  # the trainer's default head is common
        ("  name: tidpo\n", None),
    ],
)
def test_what_the_run_folder_says_about_the_masks(tmp_path, method_block, expected):
    run = _token_scores_run(tmp_path / "run", method_block, {"mask_u": [0.5, 0.5], "mask_d": [0.5, 0.5]})
    assert run.common_mask is expected
