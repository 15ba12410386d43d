"""Training health by hand: zero masks, a vanishing effective β, flat margins — each flagged once."""

from __future__ import annotations

import pytest

from tokenpo.trainers.health import HealthMonitor, check


def rows(count: int, **metrics) -> list[dict]:
    return [{"rewards/margins": 0.0, "rewards/accuracies": 0.5, **metrics} for _ in range(count)]


def test_healthy_runs_raise_nothing_and_nothing_is_judged_before_five_steps():
    learning = [{"rewards/margins": 0.1 * i, "rewards/accuracies": 0.9, "mask/u_zero_fraction": 0.4,
                 "mask/u_chosen_mean": 0.3, "mask/u_rejected_mean": 0.2} for i in range(10)]
    assert check(learning, beta=0.1, total_steps=10) == []
    assert check(rows(4, **{"mask/u_zero_fraction": 1.0}), beta=0.1, total_steps=10) == []


def test_zero_masks_and_small_multipliers_are_flagged_with_the_effective_beta():
    flags = check(rows(5, **{"mask/u_zero_fraction": 0.995, "mask/u_chosen_mean": 0.01,
                             "mask/u_rejected_mean": 0.03}), beta=0.5, total_steps=100)
    assert [f.metric for f in flags] == ["mask/u_zero_fraction", "mask/u_chosen_mean"]
    assert flags[0].value == pytest.approx(0.995) and "99.5% of completion tokens" in flags[0].problem
    assert "effective β = 0.01" in flags[1].problem  # 0.5 × (0.01 + 0.03) / 2
    weights = check(rows(5, **{"weights/chosen_mean": 0.04, "weights/rejected_mean": 0.04}), 0.1, 100)
    assert [f.metric for f in weights] == ["weights/chosen_mean"]


def test_flat_margins_are_judged_at_the_last_step_only():
    flat = rows(20)
    assert check(flat[:19], beta=0.1, total_steps=20) == []  # mid-run: first epochs are flat for everyone
    (flag,) = check(flat, beta=0.1, total_steps=20)
    assert flag.metric == "rewards/margins" and "margins stayed flat" in flag.problem
    confident = rows(20, **{"rewards/accuracies": 0.8})  # small margins but ranked right: learning
    assert check(confident, beta=0.1, total_steps=20) == []


def test_the_monitor_reports_each_metric_once():
    monitor = HealthMonitor(beta=0.1, total_steps=50)
    reported = [monitor.update({"rewards/margins": 0.0, "rewards/accuracies": 1.0, "mask/u_zero_fraction": 1.0})
                for _ in range(8)]
    assert [len(new) for new in reported] == [0, 0, 0, 0, 1, 0, 0, 0]
    assert reported[4][0].line("run-a (sparsepo)").startswith("warning: run-a (sparsepo): mask/u_zero_fraction 1: ")
    assert [f.metric for f in monitor.final()] == ["mask/u_zero_fraction"]
