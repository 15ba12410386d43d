"""Integration: DPO, SparsePO and TI-DPO on the real SmolLM2-135M-Instruct (bf16, CPU) with
HH-RLHF pairs read from ../shared at run time. Short runs: 8 pairs, ≤ 128 tokens, 10 steps of 4
pairs (5 epochs), a learning rate high enough to move; the training pairs end up ranked right."""

from __future__ import annotations

import json

import pytest
from trainer_helpers import metrics

from trainers import DPOConfig, SparsePOConfig, TIDPOConfig, TrainConfig, TrainingConfig, train

pytestmark = pytest.mark.slow

METHODS = {
    "dpo": DPOConfig(beta=0.1),
    "sparsepo-learned-common": SparsePOConfig(beta=0.1, head_learning_rate=2e-3),
    "tidpo": TIDPOConfig(
        beta=0.1,
        normalisation="mean",
        importance_source="reference",
        anchor_every=5,
        anchor_max_new_tokens=24,
    ),
}


@pytest.fixture(scope="module")
def hh_pairs(benchmarks_dir):
    from trainers.data import load_preferences

    loaded = load_preferences(
        str(benchmarks_dir / "hh_rlhf" / "helpful-base_test.jsonl.gz"), fmt="hh-rlhf-chat", skip_invalid=True
    )
    return loaded.examples[:8]


@pytest.mark.parametrize("name", list(METHODS))
def test_real_model_learns_hh_pairs(smollm2_path, hh_pairs, tmp_path, name, record_property):
    training = TrainingConfig(
        learning_rate=2e-5,
        per_device_batch_size=4,
        max_steps=10,
        warmup_ratio=0.0,
        max_length=128,
        max_prompt_length=64,
        model_dtype="bfloat16",
        seed=0,
        token_scores_examples=4,
    )
    result = train(
        TrainConfig(METHODS[name], training), str(smollm2_path), hh_pairs, tmp_path / name, progress=False
    )
    rows = metrics(result.run_dir)
    # Steps 1–2 and 9–10 each cover all 8 pairs once (first and last epoch).
    first_loss = (rows[0]["loss"] + rows[1]["loss"]) / 2
    last_loss = (rows[-2]["loss"] + rows[-1]["loss"]) / 2
    last_accuracy = (rows[-2]["rewards/accuracies"] + rows[-1]["rewards/accuracies"]) / 2
    record_property("loss_first_last", (round(first_loss, 4), round(last_loss, 4)))
    record_property("accuracy_last_epoch", last_accuracy)
    assert last_loss < first_loss
    assert last_accuracy > 0.5
    if name.startswith("sparsepo"):
        zero_fraction = rows[-1]["mask/u_zero_fraction"]
        scores = [
            json.loads(line) for line in (result.run_dir / "token_scores.jsonl").read_text().splitlines()
        ]
        masks = [value for row in scores for value in row["scores"]["mask_u"]]
        record_property("mask_zero_fraction_last_step", zero_fraction)
        record_property("mask_zero_fraction_token_scores", sum(v == 0.0 for v in masks) / len(masks))
        print(
            f"learned masks: {zero_fraction:.1%} exact zeros at the last step, "
            f"{sum(v == 0.0 for v in masks)}/{len(masks)} in token_scores.jsonl"
        )
        assert zero_fraction > 0.0 and any(v == 0.0 for v in masks)
