"""Training health by hand, both ways: runs that do not learn (zero masks, a vanishing effective β,
flat margins) and runs that learn something else than they claim (an inflated β, one token holding the
weight, a mask head that never moves, KL drift without margins, anchors few pairs had). Every check is
recorded with its outcome; each flag is reported once."""

from __future__ import annotations

import json

import pytest
import torch

from tokenpo.trainers.anchors import AnchorPool
from tokenpo.trainers.config import DPOConfig, SparsePOConfig, TDPOConfig, TIDPOConfig
from tokenpo.trainers.health import (
    HealthCheck,
    HealthContext,
    HealthMonitor,
    HealthReport,
    check,
    effective_beta,
    flagged,
)
from tokenpo.trainers.methods import TIDPO, SparsePO, StepTensors
from tokenpo.trainers.runfolder import RunFolder

CHECKS = [
    "zero_masks",
    "small_multiplier",
    "flat_margins",
    "inflated_beta",
    "concentrated_weights",
    "static_masks",
    "kl_drift",
    "anchor_coverage",
]


def rows(count: int, **metrics) -> list[dict]:
    return [{"rewards/margins": 0.0, "rewards/accuracies": 0.5, **metrics} for _ in range(count)]


def run(first: dict, last: dict) -> list[dict]:
    """Ten steps: the first window of five with ``first``'s metrics, the last window with ``last``'s."""
    return rows(5, **first) + rows(5, **last)


def context(method: str = "sparsepo", beta: float = 0.1, total_steps: int = 10, **settings) -> HealthContext:
    return HealthContext(method, beta, total_steps, **settings)


def record(records: list[HealthCheck], name: str, metric: str | None = None) -> HealthCheck:
    (found,) = [r for r in records if r.name == name and (metric is None or r.metric == metric)]
    return found


# ---------------------------------------------------------------- the checks that were there


def test_healthy_runs_raise_nothing_and_nothing_is_judged_before_five_steps():
    learning = [
        {
            "rewards/margins": 0.1 * i,
            "rewards/accuracies": 0.9,
            "mask/u_zero_fraction": 0.4,
            "mask/u_chosen_mean": 0.3,
            "mask/u_rejected_mean": 0.2,
        }
        for i in range(10)
    ]
    assert flagged(check(learning, context(beta=0.1, total_steps=10))) == ()
    early = check(rows(4, **{"mask/u_zero_fraction": 1.0}), context(beta=0.1, total_steps=10))
    assert flagged(early) == ()
    pending = record(early, "zero_masks")
    assert pending.outcome == "n/a" and "judged from step 5 on" in pending.detail


def test_zero_masks_and_small_multipliers_are_flagged_with_the_effective_beta():
    flags = flagged(
        check(
            rows(5, **{"mask/u_zero_fraction": 0.995, "mask/u_chosen_mean": 0.01, "mask/u_rejected_mean": 0.03}),
            context(beta=0.5, total_steps=100),
        )
    )
    assert [f.metric for f in flags] == ["mask/u_zero_fraction", "mask/u_chosen_mean"]
    assert flags[0].value == pytest.approx(0.995) and "99.5% of completion tokens" in flags[0].problem
    assert "effective β = 0.01" in flags[1].problem  # 0.5 × (0.01 + 0.03) / 2
    weights = check(rows(5, **{"weights/chosen_mean": 0.04, "weights/rejected_mean": 0.04}), context("tidpo", 0.1, 100))
    assert [f.metric for f in flagged(weights)] == ["weights/chosen_mean"]


def test_flat_margins_are_judged_at_the_last_step_only():
    flat = rows(20)
    assert flagged(check(flat[:19], context("dpo", beta=0.1, total_steps=20))) == ()  # mid-run: flat for everyone
    (flag,) = flagged(check(flat, context("dpo", beta=0.1, total_steps=20)))
    assert flag.metric == "rewards/margins" and "margins stayed flat" in flag.problem
    confident = rows(20, **{"rewards/accuracies": 0.8})  # small margins but ranked right: learning
    assert flagged(check(confident, context("dpo", beta=0.1, total_steps=20))) == ()


def test_the_monitor_reports_each_metric_once():
    monitor = HealthMonitor(context(beta=0.1, total_steps=50))
    reported = [
        monitor.update({"rewards/margins": 0.0, "rewards/accuracies": 1.0, "mask/u_zero_fraction": 1.0})
        for _ in range(8)
    ]
    assert [len(new) for new in reported] == [0, 0, 0, 0, 1, 0, 0, 0]
    assert reported[4][0].line("run-a (sparsepo)").startswith("warning: run-a (sparsepo): mask/u_zero_fraction 1: ")
    assert [f.metric for f in monitor.final().flags] == ["mask/u_zero_fraction"]


# ---------------------------------------------------------------- every check, recorded


@pytest.mark.parametrize(
    "config",
    [
        DPOConfig(),
        DPOConfig(loss="ipo"),
        TDPOConfig(),
        SparsePOConfig(mask="activation"),
        SparsePOConfig(),
        SparsePOConfig(heads="independent", lambda_u=0.001),
        TIDPOConfig(),
        TIDPOConfig(gamma=0.0, variant="weighted-dpo"),
    ],
    ids=lambda c: f"{c.label}",
)
def test_every_check_is_recorded_for_every_method(config):
    ctx = HealthContext.of(config, total_steps=10, pairs=8)
    for so_far in (rows(0), rows(10)):  # before the first step, and at the end
        records = check(so_far, ctx, anchored=[] if ctx.anchors else None)
        assert set(CHECKS) == {r.name for r in records}
        for r in records:
            assert r.outcome in ("pass", "flag", "n/a") and r.detail
            assert (r.value is None) == (r.outcome == "n/a")
    report = HealthMonitor(ctx).final()
    assert json.loads(json.dumps(report.as_dict()))["checks"]  # plain JSON


def test_checks_that_do_not_apply_say_why():
    dpo = check(rows(10), context("dpo"))
    for name in ("zero_masks", "small_multiplier", "inflated_beta", "concentrated_weights", "static_masks"):
        assert record(dpo, name).outcome == "n/a"
    assert record(dpo, "small_multiplier").detail == "DPO has no token masks or weights"
    assert record(dpo, "kl_drift").detail == "DPO logs no KL to the reference"
    assert record(dpo, "anchor_coverage").detail == "DPO samples no anchors"
    assert record(check(rows(10), context("tidpo")), "anchor_coverage").detail == "γ = 0: no anchors"
    short = check(rows(5, **{"kl/chosen": 0.0, "kl/rejected": 0.0}), context("tdpo", total_steps=5))
    assert record(short, "kl_drift").outcome == "n/a" and "too few" in record(short, "kl_drift").detail
    assert record(short, "flat_margins").outcome == "n/a"


def test_every_record_carries_value_threshold_and_outcome_when_it_passes():
    healthy = [
        {
            "rewards/margins": 0.2 * i,
            "rewards/accuracies": 0.9,
            "kl/chosen": 0.05 * i,
            "kl/rejected": 0.05 * i,
            "weights/chosen_mean": 1.1,
            "weights/rejected_mean": 0.9,
            "weights/top_share": 0.12,
        }
        for i in range(10)
    ]
    records = check(healthy, context("tidpo", anchors=True, pairs=4), anchored=[0, 1, 2, 3])
    assert {r.name: r.outcome for r in records} == {
        "zero_masks": "n/a",
        "small_multiplier": "pass",
        "flat_margins": "pass",
        "inflated_beta": "pass",
        "concentrated_weights": "pass",
        "static_masks": "n/a",
        "kl_drift": "pass",
        "anchor_coverage": "pass",
    }
    inflated = record(records, "inflated_beta")
    assert (inflated.metric, inflated.value, inflated.threshold) == ("weights/chosen_mean", pytest.approx(1.0), 3.0)
    margins = record(records, "flat_margins")  # margins 0.4 over steps 1–5, 1.4 over steps 6–10
    assert margins.value == pytest.approx(1.0) and margins.threshold == 0.01


# ---------------------------------------------------------------- an inflated β


def test_an_inflated_beta_is_flagged_and_a_multiplier_near_one_is_not():
    # The IMDB seeds: mean masks of 5–7 train at 5–7× β.
    inflated = check(rows(5, **{"mask/u_chosen_mean": 6.0, "mask/u_rejected_mean": 5.0}), context(beta=0.1))
    r = record(inflated, "inflated_beta")
    assert (r.outcome, r.value, r.metric) == ("flag", pytest.approx(5.5), "mask/u_chosen_mean")
    assert "effective β = 0.55, 5.5× its nominal β = 0.1" in r.detail
    assert effective_beta(rows(5, **{"mask/u_chosen_mean": 6.0, "mask/u_rejected_mean": 5.0}), context()) == 0.55
    healthy = check(rows(5, **{"mask/u_chosen_mean": 1.2, "mask/u_rejected_mean": 0.8}), context(beta=0.1))
    assert record(healthy, "inflated_beta").outcome == "pass"
    weights = check(rows(5, **{"weights/chosen_mean": 4.0, "weights/rejected_mean": 3.0}), context("tidpo"))
    assert record(weights, "inflated_beta").outcome == "flag"  # 3.5 > 3
    # The KL mask scales the penalty, not the reward: an independent m_d of 6 is no inflated β.
    kl_mask = {
        "mask/d_zero_fraction": 0.1,
        "mask/d_chosen_mean": 6.0,
        "mask/d_rejected_mean": 6.0,
        "mask/u_chosen_mean": 1.0,
        "mask/u_rejected_mean": 1.0,
    }
    assert record(check(rows(5, **kl_mask), context()), "inflated_beta").outcome == "pass"
    assert effective_beta(rows(5), context("tdpo", beta=0.3)) == 0.3  # DPO and TDPO: β itself


def test_the_report_carries_the_effective_beta():
    monitor = HealthMonitor(context("tidpo", beta=0.2, total_steps=5))
    for _ in range(5):
        monitor.update(
            {
                "rewards/margins": 0.0,
                "rewards/accuracies": 1.0,
                "weights/chosen_mean": 0.9,
                "weights/rejected_mean": 0.7,
            }
        )
    report = monitor.final()
    assert report.effective_beta == pytest.approx(0.16)  # 0.2 × (0.9 + 0.7) / 2
    assert report.anchor_coverage is None and report.steps == 5


# ---------------------------------------------------------------- concentrated weights


def test_one_token_holding_the_weight_is_flagged():
    # TI-DPO's appended <|im_end|>: ≈ 35 % of a completion's weight.
    tidpo = check(rows(5, **{"weights/top_share": 0.35}), context("tidpo"))
    r = record(tidpo, "concentrated_weights")
    assert (r.outcome, r.metric, r.value, r.threshold) == ("flag", "weights/top_share", 0.35, 0.25)
    assert "35.0% of a completion's total weight" in r.detail
    spread = check(rows(5, **{"weights/top_share": 0.1}), context("tidpo"))
    assert record(spread, "concentrated_weights").outcome == "pass"
    independent = check(
        rows(5, **{"mask/u_top_share": 0.1, "mask/d_zero_fraction": 0.2, "mask/d_top_share": 0.4}), context()
    )
    assert record(independent, "concentrated_weights", "mask/u_top_share").outcome == "pass"
    assert record(independent, "concentrated_weights", "mask/d_top_share").outcome == "flag"


def _step(weights_or_masks: torch.Tensor, mask: torch.Tensor) -> StepTensors:
    zeros = torch.zeros_like(mask)
    return StepTensors(
        targets=torch.ones_like(mask, dtype=torch.long),
        mask=mask,
        policy_logps=zeros - 1.0,
        reference_logps=zeros - 1.0,
        token_kl=zeros,
        reference_hidden=[zeros.unsqueeze(-1)],
        token_weights=weights_or_masks,
    )


def _stat(stat: tuple[torch.Tensor, torch.Tensor]) -> float:
    return float(stat[0] / stat[1])


def test_tidpo_logs_the_largest_tokens_share_of_its_completion():
    # Chosen: <|im_end|> at 9.7 after ten content tokens at 0.73 → 9.7 / (9.7 + 7.3) = 0.570588;
    # rejected: eight tokens at weight 1 (and padding that must not count) → 1/8.
    mask = torch.tensor([[1.0] * 11, [1.0] * 8 + [0.0] * 3])
    weights = torch.tensor([[0.73] * 10 + [9.7], [1.0] * 8 + [5.0] * 3])
    out = TIDPO(TIDPOConfig(gamma=0.0, variant="weighted-dpo")).compute(_step(weights, mask))
    assert _stat(out.stats["weights/top_share"]) == pytest.approx((9.7 / 17 + 1 / 8) / 2, abs=1e-6)
    # A completion under 8 tokens holds ≥ 1/7 on its top token at uniform weights: it is not read.
    short = torch.tensor([[1.0] * 11, [1.0] * 4 + [0.0] * 7])
    out = TIDPO(TIDPOConfig(gamma=0.0, variant="weighted-dpo")).compute(_step(weights, short))
    assert _stat(out.stats["weights/top_share"]) == pytest.approx(9.7 / 17, abs=1e-6)


def test_sparsepo_top_share_leaves_out_completions_without_any_mask():
    # Chosen: all zeros (no share: left out); rejected: [2, 1, 1, 1, 1, 1, 1, 2] → 2/10; outside the
    # completion ignored.
    mask = torch.tensor([[1.0] * 8 + [0.0], [1.0] * 8 + [0.0]])
    masks = torch.tensor([[0.0] * 8 + [7.0], [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 9.0]])
    method = SparsePO(SparsePOConfig(heads="independent"), head=lambda hidden: [masks, masks / 2])
    out = method.compute(_step(masks, mask))
    for kind in ("u", "d"):  # halving a mask leaves its shares alone
        total, count = out.stats[f"mask/{kind}_top_share"]
        assert (float(total), float(count)) == (pytest.approx(0.2), 1.0)


# ---------------------------------------------------------------- static masks


STATIC = run(
    {"mask/u_zero_fraction": 0.79, "mask/u_chosen_mean": 6.0, "mask/u_rejected_mean": 6.0},
    {"mask/u_zero_fraction": 0.80, "mask/u_chosen_mean": 6.2, "mask/u_rejected_mean": 6.0},
)


def test_a_learned_head_whose_sparsity_never_moves_is_flagged_at_the_end():
    # The IMDB experiment: 79 % → 80 % zeros, the mean mask within 2 % (6.0 → 6.1).
    records = check(STATIC, context(learned_masks=True))
    r = record(records, "static_masks")
    assert (r.outcome, r.metric, r.value, r.threshold) == ("flag", "mask/u_zero_fraction", pytest.approx(0.01), 0.02)
    assert "79.0% → 80.0%" in r.detail and "nothing rewards sparsity" in r.detail
    assert record(check(STATIC[:9], context(learned_masks=True)), "static_masks").outcome == "n/a"  # mid-run
    # λ > 0 rewards sparsity: the head gets a gradient even where the loss gives none, so one that
    # still did not move is flagged the same, and the detail says λ > 0.
    penalised = record(check(STATIC, context(learned_masks=True, lambdas_zero=False)), "static_masks")
    assert penalised.outcome == "flag" and "λ > 0 rewards sparsity" in penalised.detail


def test_masks_that_move_pass_and_activation_masks_are_not_judged():
    sparser = run(
        {"mask/u_zero_fraction": 0.79, "mask/u_chosen_mean": 6.0, "mask/u_rejected_mean": 6.0},
        {"mask/u_zero_fraction": 0.40, "mask/u_chosen_mean": 6.0, "mask/u_rejected_mean": 6.0},
    )
    assert record(check(sparser, context(learned_masks=True)), "static_masks").outcome == "pass"
    # No zeros either way, but the mean collapses (the quickstart's head at lr 2e-3: 0.23 → 0.0004).
    collapsing = run(
        {"mask/u_zero_fraction": 0.0, "mask/u_chosen_mean": 0.23, "mask/u_rejected_mean": 0.23},
        {"mask/u_zero_fraction": 0.0, "mask/u_chosen_mean": 0.0004, "mask/u_rejected_mean": 0.0004},
    )
    assert record(check(collapsing, context(learned_masks=True)), "static_masks").outcome == "pass"
    # The same head at the policy's learning rate: mean 0.23 throughout, no zeros: static.
    frozen = run(
        {"mask/u_zero_fraction": 0.0, "mask/u_chosen_mean": 0.23, "mask/u_rejected_mean": 0.23},
        {"mask/u_zero_fraction": 0.0, "mask/u_chosen_mean": 0.23, "mask/u_rejected_mean": 0.23},
    )
    assert record(check(frozen, context(learned_masks=True)), "static_masks").outcome == "flag"
    activation = record(check(STATIC, context(learned_masks=False)), "static_masks")
    assert activation.outcome == "n/a" and "constants of the frozen reference" in activation.detail


# ---------------------------------------------------------------- KL drift


def test_kl_growing_while_margins_stay_flat_is_flagged():
    # Masks collapsed: no signal, yet the policy drifts (KL 0.1 → 2.5 nats, margins 0 → 0.05).
    drift = run({"kl/chosen": 0.1, "kl/rejected": 0.1}, {"kl/chosen": 2.0, "kl/rejected": 3.0, "rewards/margins": 0.05})
    r = record(check(drift, context("tdpo")), "kl_drift")
    assert (r.outcome, r.metric, r.value, r.threshold) == ("flag", "kl/chosen", pytest.approx(2.4), 0.5)
    assert "drifts without separating the pairs" in r.detail
    learning = run(
        {"kl/chosen": 0.1, "kl/rejected": 0.1}, {"kl/chosen": 2.0, "kl/rejected": 3.0, "rewards/margins": 1.0}
    )
    assert record(check(learning, context("tdpo")), "kl_drift").outcome == "pass"
    still = run({"kl/chosen": 0.1, "kl/rejected": 0.1}, {"kl/chosen": 0.4, "kl/rejected": 0.4})  # grew 0.3 < 0.5
    assert record(check(still, context("sparsepo")), "kl_drift").outcome == "pass"
    assert record(check(drift[:9], context("tdpo")), "kl_drift").outcome == "n/a"  # mid-run


# ---------------------------------------------------------------- anchor coverage


def test_anchor_coverage_counts_the_pairs_the_pool_ever_held():
    # anchor_every: 8 — 13 of 63 pairs ever had an anchor.
    pool = AnchorPool(every=8, max_new_tokens=4, temperature=0.8)
    anchored = list(range(0, 63, 5))  # 13 pairs
    pool.store(anchored, [[1]] * 13, [[-0.5]] * 13, step=0)
    pool.store([0, 5], [[2]] * 2, [[-0.1]] * 2, step=8)  # resampled pairs count once
    restored = AnchorPool(every=8, max_new_tokens=4, temperature=0.8)
    restored.load_state_dict(json.loads(json.dumps(pool.state_dict())))  # a resumed run's anchors.json
    ctx = context("tidpo", anchors=True, pairs=63)
    monitor = HealthMonitor(ctx)
    for row in rows(10):
        monitor.update(row)
    report = monitor.final(list(restored.anchors))
    assert report.anchor_coverage == pytest.approx(13 / 63)
    r = record(list(report.checks), "anchor_coverage")
    assert (r.outcome, r.value, r.threshold) == ("flag", pytest.approx(13 / 63), 1.0)
    assert r.detail.startswith("13 of 63 training pairs ever had an anchor")
    assert "anchor_coverage" in [f.metric for f in report.flags]
    assert record(check(rows(10), ctx), "anchor_coverage").outcome == "n/a"  # judged at the end
    full = record(check(rows(10), context("tidpo", anchors=True, pairs=4), anchored=[0, 1, 2, 3]), "anchor_coverage")
    assert (full.outcome, full.value) == ("pass", 1.0)


# ---------------------------------------------------------------- health.json


def test_health_json_round_trips_and_older_files_read_as_flags_only(tmp_path):
    monitor = HealthMonitor(context(learned_masks=True))
    for row in STATIC:
        monitor.update(row)
    report = monitor.final()
    data = json.loads(json.dumps(report.as_dict()))
    assert list(data) == ["flags", "checks", "effective_beta", "anchor_coverage", "steps"]
    # flat margins, an inflated β ((6.2 + 6.0) / 2 = 6.1) and a static head, in today's flag shape
    assert [(f["metric"], f["value"]) for f in data["flags"]] == [
        ("rewards/margins", 0.0),
        ("mask/u_chosen_mean", pytest.approx(6.1)),
        ("mask/u_zero_fraction", pytest.approx(0.01)),
    ]
    assert all(set(f) == {"metric", "value", "problem"} for f in data["flags"])
    assert [r["outcome"] for r in data["checks"]] == ["pass", "pass", "flag", "flag", "n/a", "flag", "n/a", "n/a"]
    assert data["effective_beta"] == pytest.approx(0.61) and data["anchor_coverage"] is None and data["steps"] == 10
    assert HealthReport.from_dict(data) == report
    folder = RunFolder(tmp_path)
    folder.health.write_text(
        json.dumps({"flags": [{"metric": "rewards/margins", "value": 0.0, "problem": "flat"}], "steps": 26})
    )
    older = folder.health_report()
    assert [f.metric for f in older.flags] == ["rewards/margins"] and older.checks == ()
    assert older.effective_beta is None and older.anchor_coverage is None and older.steps == 26
    assert RunFolder(tmp_path / "none").health_report() == HealthReport()
