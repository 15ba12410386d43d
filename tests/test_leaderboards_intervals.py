"""Intervals that cover training seeds and prompts, and the verdicts they allow, on planted results.

Every case is built so the right answer is known: the exact variance of the two-level (pigeonhole)
bootstrap computed by hand, samples of one prompt that are copies of each other, seeds that disagree
while every item agrees, a difference that three seeds share, and a difference of nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from leaderboard_helpers import make_result, write_result

from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.intervals import Intervals, panels, score_statistic
from tokenpo.leaderboards.render import markdown
from tokenpo.leaderboards.results import load_results
from tokenpo.leaderboards.table import build_leaderboard
from tokenpo.leaderboards.verdicts import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE, Verdict, verdict

RAW = Benchmark("raw", "Raw", ("t",), ("acc,none",), 0.0)  # random 0: a score is 100 × the raw value


def _rows(method: str, per_seed: list[list[float]], **kwargs) -> list:
    return [
        make_result({"t": {"acc,none": scores}}, method, seed=seed, **kwargs) for seed, scores in enumerate(per_seed)
    ]


def _right(k: int, n: int, first: int = 0) -> list[float]:
    """n items, the k items from ``first`` on right."""
    return [1.0 if first <= i < first + k else 0.0 for i in range(n)]


# --- the bootstrap itself, by hand -------------------------------------------------------------------
def test_two_level_bootstrap_variance_is_the_hand_computed_pigeonhole_variance():
    """3 seeds × 12 prompts, one 0/1 item per prompt: x = μ + a_s + b_c + e_sc.

    The table is a 3 × 4 block three times over. Of the block: μ = 1/2; seed effects a = (0, 1/4, −1/4),
    Σa² = 1/8; prompt effects b = (1/6, −1/6, 1/2, −1/2) per block, Σb² over 12 prompts = 3 · 5/9 = 5/3;
    residuals e = (1/3, −1/3, 0, 0 | 1/12, 5/12, −1/4, −1/4 | −5/12, −1/12, 1/4, 1/4), Σe² = 3 · 5/6 = 5/2.
    The bootstrap variance of the seed-mean of prompt-means is Σa²/S² + Σb²/C² + Σe²/(SC)²
    = 1/72 + (5/3)/144 + (5/2)/1296 = 0.013889 + 0.011574 + 0.001929 = 0.027392: sd 0.16551, in points 16.55.
    """
    block = [[1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 1, 0]]
    runs = _rows("dpo", [row * 3 for row in block])
    (panel,) = panels([runs], "t", RAW.metrics)
    assert panel.n_seeds == 3 and panel.n_prompts == 12
    intervals = Intervals(0.95, 40_000, seed=7)
    samples = intervals.replicates(score_statistic(panel, RAW), [panel.seeds], panel.n_prompts, "test")
    exact_sd = 100 * math.sqrt(1 / 72 + (5 / 3) / 144 + (5 / 2) / 1296)
    assert exact_sd == pytest.approx(16.551, abs=1e-3)
    assert samples.mean() == pytest.approx(50.0, abs=0.3)  # the bootstrap is centred on the seed mean
    # 40 000 resamples: the sd's own sampling error is ≈ sd / √(2·40 000) = 0.4 %
    assert samples.std(ddof=1) == pytest.approx(exact_sd, rel=0.015)


def test_the_prompt_is_the_unit_so_copies_of_a_sample_do_not_shrink_the_interval():
    """12 prompts, 4 samples each, the samples of a prompt alike (6 prompts all positive, 6 all negative).

    Resampling the 48 samples as independent items gives sd = √(p(1−p)/48) = 0.0722; resampling prompts,
    √(p(1−p)/12) = 0.1443: twice as wide, as it must be when the samples repeat their prompt.
    """
    values = [1.0] * 24 + [0.0] * 24  # samples 0..23 answer prompts 0..5, 24..47 prompts 6..11
    prompt_ids = [i // 4 for i in range(48)]
    clustered = build_leaderboard(
        [make_result({"t": {"acc,none": values}}, "dpo", prompt_ids={"t": prompt_ids})], benchmarks=[RAW], n_boot=20_000
    )
    loose = build_leaderboard([make_result({"t": {"acc,none": values}}, "dpo")], benchmarks=[RAW], n_boot=20_000)
    by_prompt, by_item = clustered.rows[0].cells["raw"].score, loose.rows[0].cells["raw"].score
    assert by_prompt.se == pytest.approx(100 * math.sqrt(0.25 / 12), rel=0.03)  # 14.43
    assert by_item.se == pytest.approx(100 * math.sqrt(0.25 / 48), rel=0.03)  # 7.22
    # The number k of positive prompts drawn is Binomial(12, 1/2): P(k ≤ 2) = 79/4096 = 0.019 < 0.025 <
    # P(k ≤ 3) = 0.073, so the 95% percentile interval is exactly [3/12, 9/12]; the samples' is narrower.
    assert (by_prompt.low, by_prompt.high) == (25.0, 75.0)
    assert 25.0 < by_item.low < 50.0 < by_item.high < 75.0
    assert by_prompt.covers == "prompts" and by_prompt.seeds == 1


def test_prompt_ids_are_read_from_the_samples_file(tmp_path):
    values = [1.0, 1.0, 0.0, 0.0] * 3
    prompt_ids = {"t": [i // 2 for i in range(12)]}
    folder = write_result(tmp_path / "r", {"t": {"acc,none": values}}, "dpo", prompt_ids=prompt_ids)
    (result,) = load_results(folder)
    scores = result.items[("t", "acc,none")]
    assert scores.prompts == tuple(("t", i // 2) for i in range(12))
    (panel,) = panels([[result]], "t", RAW.metrics)
    assert panel.n_items == 12 and panel.n_prompts == 6
    assert panel.num[0, 0].tolist() == [2.0, 0.0] * 3 and panel.den[0, 0].tolist() == [2.0] * 6


# --- verdicts on planted results ---------------------------------------------------------------------
BASE = [_right(50, 100)] * 3  # three DPO seeds alike: 50 of 100


def test_seeds_that_disagree_while_items_agree_give_no_star_and_an_inconclusive_verdict():
    """Every item agrees within a seed (each seed's candidate is right on a block of items), but the seeds
    disagree: +20, −18, +16 items against the baseline. The seed mean is +6 points; an interval over
    prompts alone excludes 0, one over seeds and prompts does not."""
    candidate = [_right(70, 100), _right(32, 100), _right(66, 100)]
    board = build_leaderboard([*_rows("dpo", BASE), *_rows("new", candidate)], benchmarks=[RAW], n_boot=4000)
    cell = next(r for r in board.rows if r.method == "new").cells["raw"]
    assert cell.delta.value == pytest.approx((20 - 18 + 16) / 3)
    assert cell.delta.covers == "training seeds and prompts" and cell.delta.seeds == 3
    assert cell.delta.low < 0 < cell.delta.high and not cell.delta.significant
    found = board.cell_verdict(board.rows[1], cell.delta, RAW.random)
    assert found == Verdict(INCONCLUSIVE)
    assert "*" not in markdown(board).split("### Δ vs")[1].split("###")[0]

    # The old interval (prompts resampled, the seeds' mean kept fixed) would have marked it.
    mine, theirs = panels([board.rows[1].runs, board.rows[0].runs], "t", RAW.metrics)
    fixed = Intervals(0.95, 4000, seed=0)

    def prompts_only(prompts, seed_counts):
        ones = np.ones((len(prompts), 3))
        return mine.score(prompts, ones, 0.0) - theirs.score(prompts, ones, 0.0)

    samples = fixed.replicates(prompts_only, [mine.seeds], mine.n_prompts, "old")
    assert np.quantile(samples, 0.025) > 0


def test_a_difference_all_three_seeds_share_is_better():
    candidate = [_right(60, 100), _right(62, 100), _right(61, 100)]  # +10, +12, +11 items
    board = build_leaderboard([*_rows("dpo", BASE), *_rows("new", candidate)], benchmarks=[RAW], n_boot=4000)
    row = next(r for r in board.rows if r.method == "new")
    delta = row.cells["raw"].delta
    assert delta.value == pytest.approx(11.0) and delta.low > 0 and delta.significant
    assert board.cell_verdict(row, delta, RAW.random) == Verdict(BETTER)
    text = markdown(board)
    assert "| new | tiny-llama | +11.0 [" in text and "]* better |" in text
    # the same data the other way round is worse
    swapped = build_leaderboard([*_rows("dpo", candidate), *_rows("new", BASE)], benchmarks=[RAW], n_boot=4000)
    row = next(r for r in swapped.rows if r.method == "new")
    assert swapped.cell_verdict(row, row.cells["raw"].delta, RAW.random) == Verdict(WORSE)


def test_no_difference_on_many_prompts_is_equivalent_within_the_margin():
    """400 prompts; each candidate seed swaps 4 right answers for 4 wrong ones somewhere else: Δ = 0 on every
    seed, and the interval (about ±1.4 points) lies inside the ±5-point margin (0.05 of accuracy)."""
    base = [_right(200, 400)] * 3
    candidate = []
    for seed in range(3):
        scores = _right(200, 400)
        for i in range(4):
            scores[10 * seed + i], scores[300 + 10 * seed + i] = 0.0, 1.0
        candidate.append(scores)
    board = build_leaderboard([*_rows("dpo", base), *_rows("new", candidate)], benchmarks=[RAW], n_boot=4000)
    row = next(r for r in board.rows if r.method == "new")
    delta = row.cells["raw"].delta
    assert delta.value == pytest.approx(0.0) and -5 < delta.low < 0 < delta.high < 5
    assert board.cell_verdict(row, delta, RAW.random) == Verdict(EQUIVALENT)
    # a margin of 0.01 (one point) is narrower than the interval: no longer equivalent
    narrow = build_leaderboard(
        [*_rows("dpo", base), *_rows("new", candidate)], benchmarks=[RAW], n_boot=4000, margin=0.01
    )
    row = next(r for r in narrow.rows if r.method == "new")
    assert narrow.cell_verdict(row, row.cells["raw"].delta, RAW.random) == Verdict(INCONCLUSIVE)


def test_one_training_seed_is_inconclusive_whatever_its_interval():
    board = build_leaderboard(
        [*_rows("dpo", BASE[:1]), *_rows("new", [_right(80, 100)])], benchmarks=[RAW], n_boot=2000
    )
    row = next(r for r in board.rows if r.method == "new")
    delta = row.cells["raw"].delta
    assert delta.value == pytest.approx(30.0) and delta.low > 0  # 30 more right: far outside evaluation noise
    assert delta.covers == "prompts" and delta.claim_blocked == "1 training seed" and not delta.significant
    assert board.cell_verdict(row, delta, RAW.random) == Verdict(INCONCLUSIVE, "1 training seed")
    assert "+30.0 [" in markdown(board) and "] (1 seed) |" in markdown(board)


def test_the_untrained_base_model_needs_no_training_seeds():
    """Against the base model only the trained row's seeds count: three DPO seeds support a claim."""
    base = make_result({"t": {"acc,none": _right(40, 100)}}, "base", seed=None, harness={"method_family": "base"})
    board = build_leaderboard(
        [base, *_rows("dpo", [_right(60, 100), _right(61, 100), _right(59, 100)])],
        baseline="base",
        benchmarks=[RAW],
        n_boot=2000,
    )
    delta = next(r for r in board.rows if r.method == "dpo").cells["raw"].delta
    assert delta.seeds == 3 and delta.covers == "training seeds and prompts" and delta.significant


@pytest.mark.parametrize(
    ("low", "high", "margin", "expected"),
    [
        (0.5, 2.0, 5.0, Verdict(BETTER)),
        (-2.0, -0.1, 5.0, Verdict(WORSE)),
        (-1.0, 1.0, 5.0, Verdict(EQUIVALENT)),
        (-1.0, 6.0, 5.0, Verdict(INCONCLUSIVE)),
        (-5.0, 1.0, 5.0, Verdict(INCONCLUSIVE)),  # touching the margin is not inside it
        (-1.0, 1.0, None, Verdict(INCONCLUSIVE)),  # no margin declared: never equivalent
    ],
)
def test_verdict_words(low, high, margin, expected):
    from tokenpo.leaderboards.intervals import Estimate

    estimate = Estimate((low + high) / 2, low, high, 1.0, "bootstrap", seeds=3)
    assert verdict(estimate, margin) == expected
    assert verdict(estimate, margin, flagged="static_masks").word == INCONCLUSIVE
    one_seed = Estimate((low + high) / 2, low, high, 1.0, "bootstrap", seeds=1)
    assert verdict(one_seed, margin) == Verdict(INCONCLUSIVE, "1 training seed")
    assert verdict(Estimate.without_interval(0.3, "3 prompts"), margin) == Verdict(
        INCONCLUSIVE, "no interval: 3 prompts"
    )
    # every reason that stands in the way is named, the number of seeds first
    everything = verdict(Estimate.without_interval(0.3, "3 prompts", seeds=1), margin, flagged="static_masks")
    assert everything.text == "inconclusive (1 training seed; no interval: 3 prompts; training flagged: static_masks)"


# --- one number, one interval --------------------------------------------------------------------------
MC = Benchmark("mc", "MC", ("t",), ("acc,none",), 0.25)  # four choices: 25 % is chance


def test_models_that_answered_alike_get_the_same_interval():
    """The quickstart's MMLU: every model gave the same answers, yet the board printed [0, 20.5] for one and
    [0, 22.8] for another: each cell drew its prompts from a random stream named by its row. The stream is
    named by the data now, so alike answers get one interval, whoever gave them.

    30 of 100 right is (0.30 − 0.25) / 0.75 = 6.7 points. A resample scores 0 with fewer than 25 right, and
    for k ~ Binomial(100, 0.3), P(k ≤ 24) = 0.11 > 0.025: the low end is 0. The high end is the 97.5 %
    quantile of k, 39 (P(k ≤ 38) = 0.966, P(k ≤ 39) = 0.979): (0.39 − 0.25) / 0.75 = 18.7 points.
    """
    answers = _right(30, 100)
    results = [
        make_result({"t": {"acc,none": answers}}, "base", seed=None),
        make_result({"t": {"acc,none": answers}}, "dpo", seed=0),
        make_result({"t": {"acc,none": answers}}, "sparsepo", seed=3),
    ]
    board = build_leaderboard(results, benchmarks=[MC], n_boot=2000)
    scores = {row.method: row.cells["mc"].score for row in board.rows}
    assert set(scores) == {"base", "dpo", "sparsepo"}
    for score in scores.values():
        assert score.value == pytest.approx(20 / 3)
        assert (score.low, score.high) == (scores["dpo"].low, scores["dpo"].high)  # exactly equal
    assert scores["dpo"].low == 0.0 and scores["dpo"].high == pytest.approx((0.39 - 0.25) / 0.75 * 100)
    # every item alike: the Δ does not vary across resamples
    sparsepo = next(row for row in board.rows if row.method == "sparsepo")
    assert sparsepo.cells["mc"].delta.value == 0.0
    assert sparsepo.cells["mc"].delta.no_interval == "no variation across 100 items"


def test_an_interval_is_a_function_of_the_data_not_of_the_names_or_the_order_of_the_rows():
    """The same two results under other names, in the other order, on a board with a third row: the same
    intervals to the last bit, for the score and for the paired Δ."""
    mine, theirs = _right(62, 100), _right(50, 100, first=5)

    def cells(names: tuple[str, str], reverse: bool = False, extra: tuple = ()) -> tuple[float, ...]:
        results = [
            make_result({"t": {"acc,none": mine}}, names[0]),
            make_result({"t": {"acc,none": theirs}}, names[1]),
            *extra,
        ]
        board = build_leaderboard(
            results[::-1] if reverse else results, baseline=names[1], benchmarks=[RAW], n_boot=1000
        )
        cell = next(row for row in board.rows if row.method == names[0]).cells["raw"]
        return cell.score.low, cell.score.high, cell.delta.low, cell.delta.high

    first = cells(("sparsepo", "dpo"))
    assert cells(("renamed", "baseline"), reverse=True) == first
    assert cells(("sparsepo", "dpo"), extra=(make_result({"t": {"acc,none": _right(10, 100)}}, "tidpo"),)) == first
    # items 0–4 and 55–61 right for mine only, 5–54 for both: Δ = +12 of 100 items, +12 points
    low, high = first[2], first[3]
    assert 0 < low < 12.0 < high
