"""The training loop on tiny models: every method learns, the run folder follows the contract,
reference caching is exact, LoRA uses the base as reference, runs are idempotent, and a
non-finite loss stops with the step named and nothing half-written."""

from __future__ import annotations

import json

import pytest
import torch
from trainer_helpers import examples, metrics, weights

from tokenpo.core import progress
from tokenpo.trainers import (
    DPOConfig,
    LoraSettings,
    SparsePOConfig,
    TDPOConfig,
    TIDPOConfig,
    TrainConfig,
    TrainingConfig,
    TrainingError,
    train,
)

# One run per loss and per way of getting reference terms; variants that differ only inside a
# loss (conservative DPO, TDPO-1, ...) are pinned by hand in test_losses.py.
METHODS = {
    "dpo": DPOConfig(beta=0.5),
    "ipo": DPOConfig(beta=0.5, loss="ipo"),
    "tdpo2": TDPOConfig(beta=0.5),
    "sparsepo-activation": SparsePOConfig(beta=0.5, mask="activation"),
    # The official head initialisation starts a tiny model's masks near zero (a health flag, tested
    # below); ours starts them at the layers' average.
    "sparsepo-learned-common": SparsePOConfig(beta=0.5, head_init="average"),
    "tidpo": TIDPOConfig(beta=0.5, anchor_max_new_tokens=8),  # the released code's computation
    "tidpo-printed-formula-reference-cached": TIDPOConfig(
        beta=0.5,
        importance_source="reference",
        anchor_every=2,
        anchor_max_new_tokens=8,
        variant="weighted-dpo",
        weight_span="completion",
    ),
}


def settings(**overrides) -> TrainingConfig:
    values = dict(
        learning_rate=3e-3,
        per_device_batch_size=4,
        max_steps=5,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        token_scores_examples=2,
        seed=7,
    )
    values.update(overrides)
    return TrainingConfig(**values)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_learns_the_training_pairs(tiny_model_dirs, tmp_path, name):
    # Four pairs, all in every step: the loss must fall and the pairs end up ranked right.
    config = TrainConfig(METHODS[name], settings())
    result = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    rows = metrics(result.run_dir)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5]
    first, last = rows[0], rows[-1]
    assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-5)  # policy = reference at step 1
    assert last["rewards/margins"] > first["rewards/margins"] + 0.05
    assert last["rewards/accuracies"] > 0.5
    if not name.startswith("ipo"):  # IPO's loss is a squared distance to 1/(2β), not a likelihood
        assert last["loss"] < first["loss"]
    expected_keys = {
        "step",
        "epoch",
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "logps/chosen",
        "logps/rejected",
        "grad_norm",
        "learning_rate",
    }
    assert expected_keys <= set(last)
    if name.startswith(("tdpo", "sparsepo")):
        assert {"kl/chosen", "kl/rejected"} <= set(last) and last["kl/chosen"] > 0
    if name.startswith("sparsepo"):
        assert 0.0 <= last["mask/u_zero_fraction"] <= 1.0
    if name.startswith("tidpo-printed"):
        assert last["weights/chosen_mean"] == pytest.approx(1.0, abs=1e-4)  # mean 1 over the completion
    elif name.startswith("tidpo"):  # mean 1 over prompt and completion: the completion's share differs
        assert last["weights/chosen_mean"] > 0.1 and last["weights/chosen_mean"] != pytest.approx(1.0, abs=1e-3)
    health = json.loads((result.run_dir / "health.json").read_text())
    assert health["steps"] == 5
    # Every check is recorded, whichever the method; no check of learning flags these four pairs.
    outcomes = {check["name"]: check["outcome"] for check in health["checks"]}
    assert set(outcomes) == {
        "zero_masks",
        "small_multiplier",
        "flat_margins",
        "inflated_beta",
        "concentrated_weights",
        "static_masks",
        "kl_drift",
        "anchor_coverage",
    }
    assert outcomes["anchor_coverage"] == ("pass" if name.startswith("tidpo") else "n/a")
    flagged = {check["name"] for check in health["checks"] if check["outcome"] == "flag"}
    if name.startswith("tidpo"):
        # TI-DPO's attribution (the released code's: the gradient of the last position's top logit) piles
        # the weight on a few tokens of the tiny random model's completions: a finding health reports.
        assert flagged <= {"concentrated_weights"}
    else:
        assert flagged == set()
    assert [flag["metric"] for flag in health["flags"]] == [f.metric for f in result.health]
    assert len(health["flags"]) == len(flagged)


class Recorder(progress.Silent):
    """A display that records what a library reported: tasks as (description, total, unit, done) when
    they end, and notes."""

    def __init__(self):
        self.tasks, self.notes = [], []

    def ended(self, task):
        self.tasks.append((task.description, task.total, task.unit, task.done))

    def note(self, line):
        self.notes.append(line)


def test_a_method_that_cannot_learn_is_flagged_while_it_runs(tiny_model_dirs, tmp_path):
    # The official head initialisation on a tiny model (N(0, 0.02²) weights, 64 hidden units): masks
    # of order 1e-3, so β acts a thousand times smaller. One warning line names the metric.
    display = Recorder()
    config = TrainConfig(SparsePOConfig(beta=0.5), settings())
    with progress.shown_by(display):
        result = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    lines = display.notes
    # The training steps were reported as one task of 5 steps, each with the loss shown.
    assert display.tasks == [("training sparsepo-learned-common", 5, "step", 5)]
    assert len(lines) == 2 and lines[0].startswith("warning: run (sparsepo-learned-common): mask/u_chosen_mean ")
    assert "effective β" in lines[0]
    # masks of order 1e-3 are noise: one token of a completion holds most of that noise
    assert lines[1].startswith("warning: run (sparsepo-learned-common): mask/u_top_share ")
    flags = json.loads((result.run_dir / "health.json").read_text())["flags"]
    assert [flag["metric"] for flag in flags] == ["mask/u_chosen_mean", "mask/u_top_share"]
    assert flags[0]["value"] < 0.01 and flags[1]["value"] > 0.25
    assert [flag.metric for flag in result.health] == ["mask/u_chosen_mean", "mask/u_top_share"]


def test_the_run_folder_follows_the_file_formats(tiny_model_dirs, tmp_path):
    config = TrainConfig(SparsePOConfig(heads="independent"), settings(max_steps=4, save_every=2))
    result = train(config, tiny_model_dirs["llama"], examples(8), tmp_path / "run")
    run = result.run_dir
    assert sorted(p.name for p in run.iterdir()) == [
        "DONE",
        "checkpoints",
        "config.yaml",
        "final",
        "health.json",
        "metrics.jsonl",
        "token_scores.jsonl",
    ]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-2"]
    for folder in (run / "final", run / "checkpoints" / "step-2"):
        assert {"config.json", "model.safetensors", "tokenizer.json", "mask_head.safetensors"} <= {
            p.name for p in folder.iterdir()
        }
    assert {p.name for p in (run / "checkpoints" / "step-2" / "state").iterdir()} >= {
        "optimizer.bin",
        "random_states_0.pkl",
    }
    assert "model.safetensors" not in {p.name for p in (run / "checkpoints" / "step-2" / "state").iterdir()}
    rows = [json.loads(line) for line in (run / "token_scores.jsonl").read_text().splitlines()]
    assert [(r["example"], r["side"]) for r in rows] == [
        (0, "chosen"),
        (1, "chosen"),
        (0, "rejected"),
        (1, "rejected"),
    ]
    for row in rows:
        assert row["method"] == "sparsepo-learned-independent"
        assert set(row["scores"]) == {"logratio", "mask_u", "mask_d"}
        assert all(len(values) == len(row["tokens"]) for values in row["scores"].values())
        assert min(row["scores"]["mask_u"]) >= 0.0
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs["llama"])  # tokens as convert_ids_to_tokens gives
    assert tokenizer.convert_tokens_to_string(rows[0]["tokens"]) == examples(1)[0].chosen + "<|im_end|>"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(run / "final")  # loads as a plain HF model


def test_a_finished_run_is_returned_as_it_is_and_another_config_is_refused(tiny_model_dirs, tmp_path):
    config = TrainConfig(DPOConfig(), settings(max_steps=2))
    first = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    stamp = (first.run_dir / "DONE").stat().st_mtime_ns
    again = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    assert again.already_done and again.steps == 2 and (first.run_dir / "DONE").stat().st_mtime_ns == stamp
    with pytest.raises(TrainingError, match="finished run of another configuration"):
        train(
            TrainConfig(DPOConfig(beta=0.2), settings(max_steps=2)),
            tiny_model_dirs["llama"],
            examples(4),
            tmp_path / "run",
        )


def test_a_non_finite_loss_stops_naming_the_step_and_leaves_nothing_half_written(tiny_model_dirs, tmp_path):
    # A huge learning rate blows the weights up after the first update: step 2's loss is not finite.
    config = TrainConfig(DPOConfig(), settings(learning_rate=1e30, max_grad_norm=None, max_steps=4, save_every=1))
    with pytest.raises(TrainingError, match=r"^step 2: the (loss|gradient norm) is not finite"):
        train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    run = tmp_path / "run"
    assert [row["step"] for row in metrics(run)] == [1]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-1"]


def test_lora_uses_the_base_model_as_reference_and_saves_merged_weights(tiny_model_dirs, tmp_path):
    config = TrainConfig(
        DPOConfig(beta=0.5), settings(learning_rate=2e-2, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    )
    result = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    rows = metrics(result.run_dir)
    assert rows[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # adapters start at zero: policy = base
    assert rows[-1]["rewards/margins"] > 0.05
    final = weights(result.final_dir)
    base = weights(tiny_model_dirs["llama"])
    assert set(final) == set(base)  # merged: plain weights, no lora_A/lora_B
    changed = [k for k in base if not torch.equal(final[k], base[k])]
    assert changed and all("proj" in k for k in changed)


def test_gradient_checkpointing_changes_no_number_even_with_policy_attribution(tiny_model_dirs, tmp_path):
    # TI-DPO takes a gradient to the input embeddings and then the loss's backward through the same
    # graph: non-reentrant checkpointing must recompute both exactly.
    method = TIDPOConfig(beta=0.5, normalisation="mean", gamma=0.0)
    runs = [
        train(
            TrainConfig(method, settings(max_steps=3, gradient_checkpointing=flag)),
            tiny_model_dirs["llama"],
            examples(4),
            tmp_path / str(flag),
        )
        for flag in (False, True)
    ]
    plain, checkpointed = (metrics(run.run_dir) for run in runs)
    for row, other in zip(plain, checkpointed, strict=True):
        for key in ("loss", "rewards/margins", "grad_norm", "weights/max"):
            assert row[key] == pytest.approx(other[key], rel=1e-5, abs=1e-7), key


def test_one_process_trains_runs_with_different_precisions_one_after_another(tiny_model_dirs, tmp_path):
    # accelerate's settings are process-wide; a pipeline trains several runs in one process.
    for index, precision in enumerate(("no", "bf16", "no")):
        config = TrainConfig(DPOConfig(), settings(max_steps=1, mixed_precision=precision))
        result = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / str(index))
        assert metrics(result.run_dir)[0]["loss"] == pytest.approx(0.6931472, abs=1e-6)  # log 2 at step 1


def test_dpo_with_a_live_reference_equals_dpo_with_cached_reference_log_probs(tiny_model_dirs, tmp_path):
    rows = {}
    for precompute in (True, False):
        config = TrainConfig(DPOConfig(beta=0.5), settings(max_steps=3, precompute_reference=precompute))
        result = train(config, tiny_model_dirs["llama"], examples(8), tmp_path / str(precompute))
        rows[precompute] = metrics(result.run_dir)
    for cached, live in zip(rows[True], rows[False], strict=True):
        for key in ("loss", "rewards/chosen", "rewards/rejected", "grad_norm"):
            assert cached[key] == pytest.approx(live[key], abs=2e-5), key
