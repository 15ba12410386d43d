"""Matched-KL verdicts: a method's reward at the baseline's final KL, read along its checkpoints' path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from leaderboard_helpers import make_result, write_result

from tokenpo.leaderboards.columns import load_columns
from tokenpo.leaderboards.matched import (
    KL_METRIC,
    REWARD_METRIC,
    interval_with_unknowns,
    matched_reward,
    run_paths,
)
from tokenpo.leaderboards.render import markdown, render
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.results import read_results
from tokenpo.leaderboards.table import build_leaderboard

SENTIMENT = [b for b in load_columns() if b.name == "sentiment"]


def test_interpolation_is_linear_in_the_square_root_of_kl_by_hand():
    # √KL of the path: 0, 0.2, 0.4, 0.6; rewards 0.40, 0.50, 0.60, 0.65
    kl = np.array([[0.0, 0.04, 0.16, 0.36]])
    reward = np.array([[0.40, 0.50, 0.60, 0.65]])
    # KL 0.09: √ = 0.3, half way from 0.2 to 0.4 → 0.50 + 0.5 · 0.10 = 0.55 (linear in KL would give 0.525)
    assert matched_reward(kl, reward, np.array([0.09])) == pytest.approx([0.55])
    # KL 0.01: √ = 0.1, half way from the base (0) to step 1 (0.2) → 0.45
    assert matched_reward(kl, reward, np.array([0.01])) == pytest.approx([0.45])
    assert matched_reward(kl, reward, np.array([0.36])) == pytest.approx([0.65])  # the path's end, exactly
    assert np.isnan(matched_reward(kl, reward, np.array([0.37]))).all()  # beyond it: never extrapolated


def test_a_path_that_turns_back_is_read_at_its_first_crossing():
    # KL up to 0.16, back to 0.04, up to 0.36: the KL 0.09 is crossed in the first segment that reaches it
    kl = np.array([[0.0, 0.16, 0.04, 0.36]])
    reward = np.array([[0.4, 0.6, 0.3, 0.9]])
    # first segment √KL 0 → 0.4: 0.3 is three quarters of the way → 0.4 + 0.75 · 0.2 = 0.55
    assert matched_reward(kl, reward, np.array([0.09])) == pytest.approx([0.55])
    flat = matched_reward(np.array([[0.1, 0.1]]), np.array([[0.3, 0.7]]), np.array([0.1]))
    assert flat == pytest.approx([0.3])  # a segment of one KL gives its first point


def test_unknown_replicates_count_against_both_ends():
    samples = np.r_[np.arange(1000.0), [np.nan] * 10]  # 1 % unknown, under each 2.5 % tail
    low, high = interval_with_unknowns(samples, 0.95)
    # the 10 unknowns sit below the low end and above the high end: 25 of 1010 at each tail
    assert (low, high) == (15.0, 984.0)
    assert interval_with_unknowns(np.r_[np.arange(100.0), [np.nan] * 3], 0.95) == (-np.inf, np.inf)
    assert interval_with_unknowns(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))


# --- planted runs with checkpoints -----------------------------------------------------------------------
N = 20  # prompts, one sample each


def _rate(k: int) -> list[float]:
    return [1.0] * k + [0.0] * (N - k)


def _point(method: str, seed: int | None, step: int, final: bool, kl: float, positives: int, family: str):
    harness = {"method_family": family, "beta": 0.1, "step": step, "final": final}
    return make_result(
        {"sentiment": {KL_METRIC: [kl] * N, REWARD_METRIC: _rate(positives)}},
        method,
        seed,
        higher_is_better={"kl_to_ref": False},
        harness=harness,
    )


def _runs(baseline_kl: float = 0.09) -> list:
    """The base model (KL 0, 8 of 20 positive); three seeds of `new` evaluated at steps 10 (KL 0.04,
    10 of 20) and 20 (final: KL 0.16, 12 of 20); three seeds of dpo, final KL ``baseline_kl``, 10 of 20."""
    results = [_point("base", None, 0, True, 0.0, 8, "base")]
    for seed in range(3):
        results += [
            _point("new", seed, 10, False, 0.04, 10, "new"),
            _point("new", seed, 20, True, 0.16, 12, "new"),
            _point("dpo", seed, 20, True, baseline_kl, 10, "dpo"),
        ]
    return results


def test_the_matched_reward_and_its_delta_by_hand():
    board = build_leaderboard(_runs(), benchmarks=SENTIMENT, n_boot=2000)
    (found,) = board.verdicts
    # at √0.09 = 0.3, half way from step 10 (√0.04 = 0.2, 0.50) to step 20 (√0.16 = 0.4, 0.60): 0.55
    assert (found.method, found.baseline, found.task) == ("new", "dpo", "sentiment")
    assert found.kl == pytest.approx(0.09) and found.reward == pytest.approx(0.55)
    assert found.baseline_reward == pytest.approx(0.50) and found.delta.value == pytest.approx(0.05)
    assert found.steps == [0, 10, 20] and found.path_kl == pytest.approx((0.0, 0.16))
    assert found.seeds == [0, 1, 2] and found.delta.covers == "training seeds and prompts"
    # The seeds agree exactly, so only the prompts vary the interval
    assert found.delta.low < found.delta.value < found.delta.high
    record = found.record()
    assert set(record) >= {"kl", "delta", "low", "high", "covers", "seeds", "margin", "verdict"}
    assert record["margin"] == 0.05 and record["verdict"] == found.verdict.word
    # the checkpoints make paths, not rows: one row per method
    assert sorted(r.method for r in board.rows) == ["base", "dpo", "new"]
    assert "3 result(s) of checkpoints evaluated on the way: in the runs' paths" in " ".join(board.notes)


def test_a_secondary_metric_is_read_along_the_same_paths_by_hand():
    """p_positive with these means: base 0.50, `new` 0.60 at step 10 and 0.70 at 20, dpo 0.55 (±0.05 by prompt)."""
    means = {("base", 0): 0.50, ("new", 10): 0.60, ("new", 20): 0.70, ("dpo", 20): 0.55}
    results = _runs()
    for result in results:
        mean = means[(result.method, result.step)]
        p_positive = [mean + (0.05 if i % 2 else -0.05) * (1 + result.step / 20) for i in range(N)]
        extra = make_result({"sentiment": {"p_positive,none": p_positive}}, result.method, result.seed)
        result.metrics.update(extra.metrics)
        result.items.update(extra.items)
    board = build_leaderboard(results, benchmarks=SENTIMENT, n_boot=500)
    (headline,) = board.verdicts_on(REWARD_METRIC)
    assert headline.record() == board.verdicts[0].record()  # the default reading is the board's own
    (found,) = board.verdicts_on("p_positive,none")
    # the same KL 0.09 (√ half way from step 10 to 20): 0.60 + 0.5 · 0.10 = 0.65 against dpo's 0.55
    assert found.metric == "p_positive,none" and found.record()["metric"] == "p_positive,none"
    assert found.kl == pytest.approx(0.09) and found.reward == pytest.approx(0.65)
    assert found.delta.value == pytest.approx(0.10) and found.verdict.word == "better"


def test_a_baseline_kl_beyond_the_path_has_no_matched_point():
    board = build_leaderboard(_runs(baseline_kl=0.25), benchmarks=SENTIMENT, n_boot=500)
    (found,) = board.verdicts
    assert not found.delta.has_interval and found.verdict.word == "inconclusive"
    assert "is outside new's path (KL 0–0.16; never extrapolated)" in found.verdict.reason
    assert "inconclusive (no interval: dpo's final KL 0.25 is outside new's path" in markdown(board)


def test_a_consistent_gain_at_matched_kl_is_better_and_leads_the_table(tmp_path):
    """100 prompts: `new` gains 20 positives by KL 0.16 on every seed; dpo reaches KL 0.16 with 5 more."""
    n = 100

    def point(method, seed, step, final, kl, positives, family):
        harness = {"method_family": family, "beta": 0.1, "step": step, "final": final}
        return write_result(
            tmp_path / f"{method}-{seed}-{step}",
            {"sentiment": {KL_METRIC: [kl] * n, REWARD_METRIC: [1.0] * positives + [0.0] * (n - positives)}},
            method,
            seed,
            higher_is_better={"kl_to_ref": False},
            harness=harness,
        )

    folders = [point("base", None, 0, True, 0.0, 40, "base")]
    for seed in range(3):
        folders += [
            point("new", seed, 10, False, 0.04, 50 + seed, "new"),
            point("new", seed, 20, True, 0.16, 60 + seed, "new"),
            point("dpo", seed, 20, True, 0.16, 45 + seed, "dpo"),
        ]
    board = build_leaderboard(folders, benchmarks=SENTIMENT, n_boot=2000)
    (found,) = board.verdicts
    assert found.delta.value == pytest.approx(0.15) and found.delta.low > 0
    assert found.verdict.text == "better"
    text = markdown(board)
    assert text.startswith("## Verdicts at matched KL (baseline: dpo)")
    assert "| new | " in text.split("## Leaderboard")[0] and "| better |" in text.split("## Leaderboard")[0]
    document = json.loads(render(board, "json"))
    assert document["verdicts"][0]["verdict"] == "better" and document["verdicts"][0]["method"] == "new"
    # paths are read back from the folders, step by step
    paths = {(p.method, p.seed): p for p in run_paths(read_results(folders))}
    assert paths[("new", 0)].steps == (10, 20) and paths[("dpo", 1)].steps == (20,)


def test_one_seed_each_gives_the_delta_but_no_claim():
    results = [r for r in _runs() if r.seed in (None, 0)]
    (found,) = build_leaderboard(results, benchmarks=SENTIMENT, n_boot=500).verdicts
    assert found.delta.value == pytest.approx(0.05) and found.delta.covers == "prompts"
    assert found.verdict.text == "inconclusive (1 training seed)"


def test_a_flagged_method_is_inconclusive_whatever_its_interval():
    results = _runs()
    for result in results:
        if result.method == "new":
            result.harness["training_health"] = [
                {"metric": "mask/u_zero_fraction", "value": 0.8, "problem": "static_masks: the masks did not move"}
            ]
    (found,) = build_leaderboard(results, benchmarks=SENTIMENT, n_boot=500).verdicts
    assert found.verdict.word == "inconclusive" and found.verdict.reason == (
        "training flagged: seed 0: mask/u_zero_fraction = 0.8; seed 1: mask/u_zero_fraction = 0.8; "
        "seed 2: mask/u_zero_fraction = 0.8"
    )


def test_seeds_whose_effective_beta_disagree_flag_the_row():
    results = _runs()
    for result in results:
        if result.method == "new":
            result.harness["effective_beta"] = {0: 0.05, 1: 0.4, 2: 0.7}[result.seed]
    board = build_leaderboard(results, benchmarks=SENTIMENT, n_boot=200)
    row = next(r for r in board.rows if r.method == "new")
    assert row.flagged and row.health_status == "flagged"
    (flag,) = row.row_flags
    assert flag["metric"] == "effective_beta" and flag["value"] == pytest.approx(14.0)  # 0.7 / 0.05
    assert "seed_disagreement" in flag["problem"] and "seed 2: 0.7, seed 0: 0.05" in flag["problem"]
    assert board.verdicts[0].verdict.reason.startswith("training flagged: effective_beta = 14 across seeds")
    assert any(
        note.startswith("⚠ training health: new (tiny-llama), across its seeds: effective_beta = 14: seed_disagreement")
        for note in board.notes
    )
    html = build_html(board, [])
    assert "across its seeds: effective_beta = 14: seed_disagreement" in html.split('id="leaderboard"')[1]
    close = _runs()
    for result in close:
        if result.method == "new":
            result.harness["effective_beta"] = {0: 0.1, 1: 0.2, 2: 0.29}[result.seed]
    assert not next(
        r for r in build_leaderboard(close, benchmarks=SENTIMENT, n_boot=200).rows if r.method == "new"
    ).flagged
