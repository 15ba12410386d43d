"""Training run folders: health.json and the mask-sparsity / token-weight records."""

from __future__ import annotations

import json

import pytest
from leaderboard_helpers import make_result

from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.report import build_html
from tokenpo.leaderboards.runs import load_run, mask_weight_records
from tokenpo.leaderboards.table import build_leaderboard

MC = Benchmark("mc", "MC", ("mc_task",), ("acc,none",), 0.25)
FLAT = {"metric": "rewards/margins", "value": 0.0008, "problem": "margins stayed flat (0.0008 over the last 5 steps)"}


def _write(folder, rows, method=None, health=None):
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if method:
        (folder / "config.yaml").write_text(f"method: {method}\n")
    if health is not None:
        (folder / "health.json").write_text(json.dumps(health))
    return folder


def _sparsepo_rows():
    rows = []
    for step in range(1, 8):
        row = {
            "step": step,
            "loss": 0.69,
            "mask/u_zero_fraction": 0.9 if step >= 6 else 0.1 * step,  # steps 6, 7 are logged again below
            "mask/u_chosen_mean": 0.8,
            "mask/u_rejected_mean": 1 - 0.1 * step,
            "mask/d_zero_fraction": 0.05 * step,
            "mask/d_chosen_mean": 0.5,
            "mask/d_rejected_mean": 0.5,
            "rewards/margins": 0.2 * step,
        }
        if step % 2:
            row["rewards/accuracies"] = 0.5 + 0.05 * step  # logged on odd steps only
        rows.append(row)
    # resumed from step 5: steps 6 and 7 again, the later values count
    rows += [{"step": 6, "mask/u_zero_fraction": 0.6}, {"step": 7, "mask/u_zero_fraction": 0.7}]
    return rows


def _tidpo_rows():
    return [
        {
            "step": step,
            "weights/chosen_mean": 1.0,
            "weights/rejected_mean": 1.2 - 0.02 * step,
            "weights/max": 2.0 + step,
            "rewards/margins": 0.1 * step,
            "rewards/accuracies": 0.6,
        }
        for step in range(1, 11)
    ]


@pytest.fixture
def runs(tmp_path):
    return [
        load_run(_write(tmp_path / "sparsepo", _sparsepo_rows(), "sparsepo-learned-independent", {"flags": [FLAT]})),
        load_run(_write(tmp_path / "tidpo", _tidpo_rows(), "tidpo", {"flags": [], "steps": 10})),
        load_run(_write(tmp_path / "dpo", [{"step": 1, "rewards/margins": 0.5}, {"step": 2, "rewards/margins": 0.7}])),
    ]


def test_mask_and_weight_records_by_hand(runs):
    sparsepo, tidpo, dpo = mask_weight_records(runs)
    assert sparsepo["run"] == "sparsepo" and sparsepo["method"] == "sparsepo-learned-independent"
    assert sparsepo["kind"] == "sparsepo"
    assert (sparsepo["first_step"], sparsepo["steps"], sparsepo["window"]) == (1, 7, 5)
    m = sparsepo["metrics"]
    assert list(m) == [
        "mask/u_zero_fraction",
        "mask/u_chosen_mean",
        "mask/u_rejected_mean",
        "mask/d_zero_fraction",
        "mask/d_chosen_mean",
        "mask/d_rejected_mean",
        "rewards/margins",
        "rewards/accuracies",
    ]
    # steps 3..7 with the re-logged 0.6 and 0.7: (0.3 + 0.4 + 0.5 + 0.6 + 0.7) / 5
    assert m["mask/u_zero_fraction"] == pytest.approx({"first": 0.1, "last": 0.5, "final": 0.7})
    assert m["mask/u_rejected_mean"] == pytest.approx({"first": 0.9, "last": 0.5, "final": 0.3})
    assert m["mask/u_chosen_mean"] == pytest.approx({"first": 0.8, "last": 0.8, "final": 0.8})
    assert m["mask/d_zero_fraction"] == pytest.approx({"first": 0.05, "last": 0.25, "final": 0.35})
    assert m["rewards/margins"]["final"] == pytest.approx(1.4)
    # logged on 4 steps: all of them are the "last 5"
    assert m["rewards/accuracies"] == pytest.approx({"first": 0.55, "last": 0.7, "final": 0.85})
    assert sparsepo["health"] == "flagged" and sparsepo["health_flags"] == [FLAT]

    assert tidpo["kind"] == "tidpo" and tidpo["steps"] == 10 and tidpo["health"] == "ok"
    w = tidpo["metrics"]
    assert list(w) == [
        "weights/chosen_mean",
        "weights/rejected_mean",
        "weights/max",
        "rewards/margins",
        "rewards/accuracies",
    ]
    assert w["weights/max"] == pytest.approx({"first": 3.0, "last": 10.0, "final": 12.0})  # mean of 8..12
    assert w["weights/rejected_mean"] == pytest.approx({"first": 1.18, "last": 1.04, "final": 1.0})
    assert tidpo["health_flags"] == []

    assert dpo["kind"] is None and dpo["method"] is None and dpo["health"] == "unknown"
    assert dpo["metrics"] == {"rewards/margins": pytest.approx({"first": 0.5, "last": 0.6, "final": 0.7})}
    assert dpo["window"] == 2
    json.dumps(mask_weight_records(runs))  # plain JSON types


def test_window_is_configurable(runs):
    record = mask_weight_records(runs[:1], window=2)[0]
    assert record["metrics"]["mask/u_zero_fraction"]["last"] == pytest.approx(0.65)
    with pytest.raises(ValueError, match="window"):
        mask_weight_records(runs, window=0)


def test_report_has_the_mask_and_weight_table(runs):
    board = build_leaderboard([make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo")], benchmarks=[MC], n_boot=20)
    html = build_html(board, runs)
    section = html[html.index('<section id="masks"') :]
    section = section[: section.index("</section>")]
    heads = ("mask u = 0", "mask d = 0", "mask u chosen", "mask u rejected", "weight max", "rewards/margins (final)")
    for head in heads:
        assert f"<th>{head}</th>" in section
    rows = section.split("<tr>")[2:]
    assert [row.split("</td>")[0] for row in rows] == ["<td>sparsepo", "<td>tidpo", "<td>dpo"]
    assert "<td>0.100 → 0.500</td>" in rows[0]  # u zero fraction: step 1 → last 5
    assert "<td>3.000 → 10.000</td>" in rows[1] and "<td>—</td>" in rows[1]  # weights; no masks
    assert "training flagged" in rows[0] and "margins stayed flat" in rows[0]
    assert "<td>1.400</td>" in rows[0]  # final margin
    # the section is left out when no run has metrics or health
    assert 'id="masks"' not in build_html(board, [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"steps": 3}, r"health.json: flags: missing"),
        ({"flags": [{"metric": "loss", "value": 1.0}]}, r"health.json: flags\[0\].problem: missing"),
        ({"flags": [], "steps": "many"}, r"health.json: steps: expected an integer"),
        ({"flags": "fine"}, r"health.json: flags: expected a list of flags, got str"),
        (
            {"flags": [], "checks": [{"name": "zero_masks", "outcome": "ok"}]},
            r"health.json: checks\[0\].outcome: expected one of pass, flag, n/a, got 'ok'",
        ),
        ({"flags": [], "effective_beta": "large"}, r"health.json: effective_beta: expected a number or null"),
    ],
)
def test_bad_health_files_name_the_field(tmp_path, content, message):
    folder = _write(tmp_path / "run", [{"step": 1, "loss": 0.7}], health=content)
    with pytest.raises(ResultsError, match=message):
        load_run(folder)


def test_every_health_check_reaches_the_summary_and_the_report(tmp_path):
    checks = [
        {
            "name": "concentrated_weights",
            "metric": "weights/top_share",
            "value": 0.37,
            "threshold": 0.25,
            "outcome": "flag",
            "detail": "one token holds 37.0% …",
        },
        {
            "name": "zero_masks",
            "metric": "mask/u_zero_fraction",
            "value": None,
            "threshold": 0.99,
            "outcome": "n/a",
            "detail": "TI-DPO has no token masks",
        },
        {
            "name": "anchor_coverage",
            "metric": "anchor_coverage",
            "value": 0.25,
            "threshold": 1.0,
            "outcome": "flag",
            "detail": "16 of 64 pairs ever had an anchor",
        },
        {
            "name": "flat_margins",
            "metric": "rewards/margins",
            "value": 1.2,
            "threshold": 0.01,
            "outcome": "pass",
            "detail": "…",
        },
    ]
    health = {
        "flags": [{"metric": "anchor_coverage", "value": 0.25, "problem": "16 of 64 pairs ever had an anchor"}],
        "checks": checks,
        "effective_beta": 0.112,
        "anchor_coverage": 0.25,
        "steps": 30,
    }
    run = load_run(_write(tmp_path / "run", [{"step": 1, "loss": 0.7, "weights/chosen_mean": 1.1}], health=health))
    (record,) = mask_weight_records([run])
    assert record["effective_beta"] == 0.112 and record["anchor_coverage"] == 0.25
    assert [(c["name"], c["outcome"]) for c in record["health_checks"]] == [
        ("concentrated_weights", "flag"),
        ("zero_masks", "n/a"),
        ("anchor_coverage", "flag"),
        ("flat_margins", "pass"),
    ]
    board = build_leaderboard([make_result({"mc_task": {"acc,none": [1, 0]}}, "dpo")], benchmarks=[MC], n_boot=20)
    section = build_html(board, [run]).split('<section id="masks"')[1].split("</section>")[0]
    assert "<td>0.112</td><td>0.25</td>" in section
    assert "flag: concentrated_weights, anchor_coverage · pass: flat_margins · n/a: zero_masks" in section
