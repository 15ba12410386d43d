"""Sweeps: a grid over method and training keys expands into named runs, validated like hand-written ones."""

from __future__ import annotations

import pytest

from tokenpo.core.config import ConfigError, from_mapping
from tokenpo.harness.pipeline.config import RunConfig, method_training

BASE = {
    "name": "grid",
    "data": {"path": "pairs.jsonl"},
    "methods": [
        {"name": "dpo", "method": {"name": "dpo", "beta": 0.1}},
        {"name": "sparsepo", "method": {"name": "sparsepo", "beta": 0.1, "mask": "activation"}},
    ],
}


def _config(**extra) -> RunConfig:
    return from_mapping(RunConfig, {**BASE, **extra}, "run.yaml")


def test_every_swept_method_becomes_one_run_per_grid_point_and_seed():
    config = _config(
        sweep={"grid": {"method.beta": [0.05, 0.5], "training.learning_rate": [5e-7, 1e-6]}, "seeds": [1, 2]},
        report={"baseline": "dpo-beta0.05-learning_rate5e-07"},
    )
    names = [run.name for run in config.methods]
    assert names == [
        f"{method}-beta{beta}-learning_rate{rate}"
        for method in ("dpo", "sparsepo")
        for beta in ("0.05", "0.5")
        for rate in ("5e-07", "1e-06")
    ]
    last = config.methods[-1]
    assert (last.method.name, last.method.beta, last.method.mask, last.seeds) == ("sparsepo", 0.5, "activation", [1, 2])
    assert method_training(config, len(config.methods) - 1, "run.yaml").learning_rate == 1e-6


def test_a_sweep_can_leave_the_baseline_as_it_is():
    config = _config(sweep={"grid": {"method.beta": [0.05, 0.5]}, "methods": ["sparsepo"]})
    assert [run.name for run in config.methods] == ["dpo", "sparsepo-beta0.05", "sparsepo-beta0.5"]
    assert config.methods[0].seeds == [0]  # the method's own seeds without sweep.seeds


@pytest.mark.parametrize(
    ("sweep", "report", "message"),
    [
        (
            {"grid": {"method.beta": [0.05, 0.5]}},
            None,
            "run.yaml: report: baseline 'dpo' is swept into dpo-beta0.05, dpo-beta0.5: name one of them",
        ),
        ({"grid": {"method.mask_l1": [0.1]}, "methods": ["sparsepo"]}, None, "run.yaml: sweep: sparsepo-mask_l10.1"),
        (
            {"grid": {"method.beta": ["high"]}, "methods": ["sparsepo"]},
            None,
            "run.yaml: sweep: sparsepo-betahigh.method.beta: expected a number",
        ),
        ({"grid": {"beta": [0.1]}}, None, "run.yaml: sweep.grid: beta: expected method.KEY or training.KEY"),
        ({"grid": {"method.beta": []}}, None, "run.yaml: sweep.grid: method.beta: expected a non-empty list"),
        ({"grid": {"method.beta": [0.1]}, "methods": ["ipo"]}, None, "run.yaml: sweep: methods: 'ipo' is not one"),
    ],
)
def test_a_bad_sweep_is_refused_naming_the_key_and_run(sweep, report, message):
    with pytest.raises(ConfigError) as caught:
        _config(sweep=sweep, **({"report": report} if report else {}))
    assert str(caught.value).startswith(message), str(caught.value)
