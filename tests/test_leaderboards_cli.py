"""``harness leaderboard`` and ``harness regress`` end to end on result folders."""

from __future__ import annotations

import csv
import io
import json
from statistics import NormalDist

import pytest
from leaderboard_helpers import write_result

from tokenpo.harness.cli import main

BENCHMARKS = """\
benchmarks:
  mc:
    label: MC
    tasks: [mc_task]
    metrics: ["acc,none"]
    random: 0.25
  gen:
    label: Gen
    tasks: [gen_task]
    metrics: ["exact_match,strict-match"]
    random: 0.0
"""


def _scores(right: int, n: int) -> list[int]:
    return [1] * right + [0] * (n - right)


@pytest.fixture
def folders(tmp_path):
    """One result per method (the regression gate compares re-evaluations of one model)."""
    registry = tmp_path / "catalog.yaml"
    registry.write_text(BENCHMARKS)
    dpo = write_result(
        tmp_path / "dpo",
        {"mc_task": {"acc,none": _scores(40, 80)}, "gen_task": {"exact_match,strict-match": _scores(20, 80)}},
        "dpo",
    )
    new = write_result(
        tmp_path / "new",
        {"mc_task": {"acc,none": _scores(56, 80)}, "gen_task": {"exact_match,strict-match": _scores(20, 80)}},
        "sparsepo",
    )
    return registry, dpo, new


@pytest.fixture
def two_seeds(tmp_path):
    """Two training seeds per method (a claim needs at least two): MC right answers per seed, Gen alike."""
    registry = tmp_path / "catalog.yaml"
    registry.write_text(BENCHMARKS)
    made = {}
    for method, rights in (("dpo", (40, 42)), ("sparsepo", (56, 54))):
        made[method] = [
            write_result(
                tmp_path / f"{method}-seed{seed}",
                {
                    "mc_task": {"acc,none": _scores(right, 80)},
                    "gen_task": {"exact_match,strict-match": _scores(20, 80)},
                },
                method,
                seed=seed,
            )
            for seed, right in enumerate(rights)
        ]
    return registry, made["dpo"], made["sparsepo"]


def test_leaderboard_markdown(two_seeds, capsys):
    registry, dpo, new = two_seeds
    paths = [str(p) for p in (*dpo, *new)]
    assert main(["leaderboard", *paths, "--catalog", str(registry), "--bootstrap", "300"]) == 0
    out = capsys.readouterr().out
    # MC: dpo 0.5, 0.525 → 33.3, 36.7 → 35.0 ± 2.4; sparsepo 0.7, 0.675 → 60.0, 56.7 → 58.3 ± 2.4;
    # Gen: 25.0 everywhere; averages 30.0 and 41.7
    assert "| dpo (baseline) | tiny-llama | 0,1 | 35.0 ± 2.4 | 25.0 ± 0.0 | 30.0 ± 1.2 |" in out
    assert "| sparsepo | tiny-llama | 0,1 | 58.3 ± 2.4 | 25.0 ± 0.0 | 41.7 ± 1.2 |" in out
    # Gen: both runs score every item alike, so the Δ has no interval, nor has the average built on it.
    assert "| sparsepo | tiny-llama | +23.3 [" in out
    assert (
        "]* better | +0.0 (no interval: no variation across 80 items) | +11.7 (no interval: Gen lacks one) | "
        "training seeds and prompts |"
    ) in out
    assert "max(0, (v − random) / (1 − random)) · 100" in out


def test_one_training_seed_shows_its_interval_marked_and_claims_nothing(folders, capsys, tmp_path):
    registry, dpo, new = folders
    assert (
        main(
            [
                "leaderboard",
                str(dpo),
                str(new),
                "--catalog",
                str(registry),
                "--bootstrap",
                "300",
                "--format",
                "json",
                "--out",
                str(tmp_path / "board.json"),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "board.json").read_text())["rows"]
    mc = next(r for r in rows if r["method"] == "sparsepo" and r["benchmark"] == "mc")
    # 16 more right of 80: +26.7 points, an interval well above 0 — of one trained model, not of the method
    assert mc["delta"] == pytest.approx(80 / 3) and mc["delta_low"] > 0 and not mc["significant"]
    assert mc["delta_covers"] == "prompts" and mc["delta_seeds"] == 1
    assert (mc["verdict"], mc["verdict_reason"]) == ("inconclusive", "1 training seed")
    assert main(["leaderboard", str(dpo), str(new), "--catalog", str(registry), "--bootstrap", "300"]) == 0
    out = capsys.readouterr().out
    assert "| sparsepo | tiny-llama | +26.7 [" in out and "] (1 seed) | +0.0 (no interval" in out
    assert "]*" not in out


def test_leaderboard_csv_json_and_tidy(two_seeds, capsys, tmp_path):
    registry, dpo, new = two_seeds
    common = [*(str(p) for p in (*dpo, *new)), "--catalog", str(registry), "--bootstrap", "200"]
    assert main(["leaderboard", *common, "--format", "csv", "--tidy"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8 and set(rows[0]) == {
        "model",
        "method",
        "seed",
        "step",
        "task",
        "metric",
        "value",
        "stderr",
        "n",
        "source",
    }
    assert main(["leaderboard", *common, "--format", "json", "--out", str(tmp_path / "board.json")]) == 0
    document = json.loads((tmp_path / "board.json").read_text())
    assert document["baseline"] == "dpo" and [b["name"] for b in document["benchmarks"]] == ["mc", "gen"]
    mc = next(r for r in document["rows"] if r["method"] == "sparsepo" and r["benchmark"] == "mc")
    assert mc["score"] == pytest.approx(175 / 3) and mc["delta"] == pytest.approx(70 / 3) and mc["significant"]
    assert mc["delta_covers"] == "training seeds and prompts" and mc["verdict"] == "better"


def test_leaderboard_html_is_written_atomically_and_self_contained(folders, tmp_path):
    registry, dpo, new = folders
    out = tmp_path / "site" / "report.html"
    assert (
        main(
            [
                "leaderboard",
                str(dpo),
                str(new),
                "--catalog",
                str(registry),
                "--format",
                "html",
                "--out",
                str(out),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and '<table class="leaderboard">' in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "url(" not in html
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left


def test_leaderboard_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{oops")
    assert main(["leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "results.json: invalid JSON" in err and "\n" not in err


def test_regress_passes_on_equal_scores_and_prints_the_table(folders, capsys):
    _, dpo, _ = folders
    assert main(["regress", "--baseline", str(dpo), "--candidate", str(dpo / "results.json")]) == 0
    out = capsys.readouterr().out
    assert "mc_task   acc,none" in out and "paired z" in out and "PASS" in out
    # the gate compares two evaluations of one model: its intervals are over items, and it says so
    assert "intervals cover items: two evaluations of one model are compared, so no training seed varies" in out


def test_regress_fails_on_a_drop_and_tolerance_lets_it_pass(folders, capsys):
    _, dpo, new = folders
    # sparsepo → dpo drops MC by 20 points on the same 80 items (16 items flipped, none the other way)
    assert main(["regress", "--baseline", str(new), "--candidate", str(dpo)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "-20.00" in out and "FAIL: 1 metric(s) regressed: mc_task acc,none" in out
    assert main(["regress", "--baseline", str(new), "--candidate", str(dpo), "--max-drop", "25"]) == 0


def test_regress_falls_back_to_stderr_and_says_so(tmp_path, capsys):
    base = write_result(tmp_path / "b", {"mc_task": {"acc,none": _scores(60, 100)}}, "dpo", samples=False)
    cand = write_result(tmp_path / "c", {"mc_task": {"acc,none": _scores(50, 100)}}, "new", samples=False)
    # Unpaired, a 10-point drop on 100 items is within the noise (p ≈ 0.155): exit 0.
    assert main(["regress", "--baseline", str(base), "--candidate", str(cand)]) == 0
    out = capsys.readouterr().out
    assert "stderr z (no per-item scores)" in out and "same" in out
    # Δ = −10 points; se = √(se_b² + se_c²) with se = sd/√n: sd(60/100) = 0.49237, sd(50/100) = 0.50252
    se = ((0.492366 / 10) ** 2 + (0.502519 / 10) ** 2) ** 0.5 * 100
    p = 2 * NormalDist().cdf(-10 / se)
    assert f"{p:.3g}" in out


def test_regress_lower_is_better_metric_counts_an_increase_as_a_drop(tmp_path, capsys):
    base = write_result(
        tmp_path / "b",
        {"sentiment": {"kl_to_ref,none": [0.1] * 50 + [0.2] * 50}},
        "dpo",
        higher_is_better={"kl_to_ref": False},
    )
    cand = write_result(
        tmp_path / "c",
        {"sentiment": {"kl_to_ref,none": [0.3] * 50 + [0.4] * 50}},
        "new",
        higher_is_better={"kl_to_ref": False},
    )
    assert main(["regress", "--baseline", str(base), "--candidate", str(cand)]) == 1
    out = capsys.readouterr().out
    assert "kl_to_ref,none (lower is better)" in out and "-20.00" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "1.5"], "alpha: 1.5 is not in (0, 1)"),
        (["--max-drop", "-1"], "max-drop: -1.0 must be a number ≥ 0"),
        (["--tasks", "nope"], "--tasks: nope not in the baseline"),
    ],
)
def test_regress_bad_options_exit_2(folders, capsys, extra, message):
    _, dpo, new = folders
    assert main(["regress", "--baseline", str(dpo), "--candidate", str(new), *extra]) == 2
    assert message in capsys.readouterr().err


def test_regress_candidate_missing_a_task_is_bad_input(folders, tmp_path, capsys):
    _, dpo, _ = folders
    partial = write_result(tmp_path / "partial", {"mc_task": {"acc,none": _scores(40, 80)}}, "new")
    assert main(["regress", "--baseline", str(dpo), "--candidate", str(partial)]) == 2
    assert "lacks what the baseline has: gen_task exact_match,strict-match" in capsys.readouterr().err


def test_regress_notes_candidate_tasks_the_baseline_lacks(folders, tmp_path, capsys):
    _, dpo, _ = folders
    bigger = write_result(
        tmp_path / "bigger",
        {
            "mc_task": {"acc,none": _scores(40, 80)},
            "gen_task": {"exact_match,strict-match": _scores(20, 80)},
            "new_task": {"acc,none": _scores(1, 2)},
        },
        "new",
    )
    assert main(["regress", "--baseline", str(dpo), "--candidate", str(bigger)]) == 0
    assert "note: not gated (the baseline lacks them): new_task" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--runs", "x"], "--runs: training runs are drawn by --format html only"),
        (["--tidy"], "--tidy: the tidy table is written as --format csv or json"),
        (["--bootstrap", "0"], "bootstrap: 0 resamples; need at least 10"),
        (["--confidence", "1.2"], "confidence: 1.2 is not in [0.5, 1)"),
    ],
)
def test_leaderboard_bad_options_exit_2(folders, capsys, extra, message):
    registry, dpo, _ = folders
    assert main(["leaderboard", str(dpo), "--catalog", str(registry), *extra]) == 2
    assert message in capsys.readouterr().err
