"""The quickstart's methods, with the quickstart's settings, learn on real HH pairs with SmolLM2-135M.

"Learns" is the quickstart's bar: over the last steps, reward accuracy ≥ 0.75 and margins ≥ 0.25
on the training pairs, no training-health check of learning flagged (zero masks, a vanishing
multiplier, flat margins, KL drifting on a dead loss), and learned masks that keep between 5% and 95%
of the completion tokens non-zero. The checks of how a method learns (inflated β, concentrated
weights, static masks, anchor coverage) are recorded for every method: what they find is reported,
not asserted (a finding about the method, not a failure to learn).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainer_helpers import metrics

from tokenpo.core.config import load_config, to_mapping
from tokenpo.harness.pipeline.config import RunConfig, method_training
from tokenpo.trainers import TrainConfig, train

pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
CONFIG = load_config(RunConfig, QUICKSTART)


@pytest.fixture(scope="module")
def hh_pairs(benchmarks_dir):
    from tokenpo.trainers.data import load_preferences

    loaded = load_preferences(
        str(benchmarks_dir / "hh_rlhf" / "helpful-base_test.jsonl.gz"), fmt="hh-rlhf-chat", skip_invalid=True
    )
    return loaded.examples[:8]


@pytest.mark.parametrize("index", range(len(CONFIG.methods)), ids=[run.name for run in CONFIG.methods])
def test_the_quickstart_methods_learn_real_pairs(smollm2_path, hh_pairs, tmp_path, index, record_property):
    run = CONFIG.methods[index]
    quickstart = to_mapping(method_training(CONFIG, index, str(QUICKSTART)))
    settings = {**quickstart, "max_steps": 10, "max_length": 128, "max_prompt_length": 64, "save_every": 0}
    training = type(method_training(CONFIG, index, str(QUICKSTART)))(**settings)
    result = train(TrainConfig(run.method, training), str(smollm2_path), hh_pairs, tmp_path / run.name)
    rows = metrics(result.run_dir)[-4:]  # the last two passes over the 8 pairs
    accuracy = sum(row["rewards/accuracies"] for row in rows) / len(rows)
    margins = sum(row["rewards/margins"] for row in rows) / len(rows)
    record_property("accuracy_margins_last_steps", (accuracy, round(margins, 4)))
    assert accuracy >= 0.75 and margins >= 0.25, (accuracy, margins)
    outcomes = {(check.name, check.metric): check.outcome for check in result.checks}
    record_property("health_flags", sorted(f"{name} {metric}" for (name, metric), o in outcomes.items() if o == "flag"))
    learning = {"zero_masks", "small_multiplier", "flat_margins", "kl_drift"}
    assert not [key for key, outcome in outcomes.items() if key[0] in learning and outcome == "flag"], outcomes
    assert {name for name, _ in outcomes} >= learning | {
        "inflated_beta",
        "concentrated_weights",
        "static_masks",
        "anchor_coverage",
    }
    if "mask/u_zero_fraction" in rows[-1]:
        nonzero = 1 - sum(row["mask/u_zero_fraction"] for row in rows) / len(rows)
        scores = [json.loads(line) for line in (result.run_dir / "token_scores.jsonl").read_text().splitlines()]
        masks = [value for row in scores for value in row["scores"]["mask_u"]]
        record_property("mask_nonzero_fraction", round(nonzero, 4))
        print(f"learned masks: {nonzero:.1%} of completion tokens non-zero over the last steps")
        assert 0.05 <= nonzero <= 0.95
        assert any(v == 0.0 for v in masks) and any(v > 0.0 for v in masks)
