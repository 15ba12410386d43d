"""Checkpoints without the training state (``save_only_model``) and a mask head that does not train
(``head_learning_rate: 0``): the two settings the matched-KL experiment's runs and control use."""

from __future__ import annotations

import shutil

import torch
from safetensors.torch import load_file
from trainer_helpers import examples, metrics, weights

from tokenpo.trainers import DPOConfig, SparsePOConfig, TrainConfig, TrainingConfig, train
from tokenpo.trainers.masks import HEAD_FILE


def training(**extra) -> TrainingConfig:
    return TrainingConfig(learning_rate=3e-3, per_device_batch_size=2, max_steps=6, save_every=2, seed=3, **extra)


def test_model_only_checkpoints_hold_the_same_weights_and_an_unfinished_run_starts_again(tiny_model_dirs, tmp_path):
    model, data = tiny_model_dirs["llama"], examples(8)
    full = train(TrainConfig(DPOConfig(beta=0.5), training()), model, data, tmp_path / "full")
    only = train(TrainConfig(DPOConfig(beta=0.5), training(save_only_model=True)), model, data, tmp_path / "only")

    steps = sorted(p.name for p in (only.run_dir / "checkpoints").iterdir())
    assert steps == ["step-2", "step-4"]
    for step in steps:
        assert (full.run_dir / "checkpoints" / step / "state").is_dir()
        assert not (only.run_dir / "checkpoints" / step / "state").exists()
        ours, theirs = weights(only.run_dir / "checkpoints" / step), weights(full.run_dir / "checkpoints" / step)
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    # The same run, so the same fingerprint: a folder written either way is recognised as finished.
    again = train(TrainConfig(DPOConfig(beta=0.5), training()), model, data, only.run_dir)
    assert again.already_done

    # An unfinished run of model-only checkpoints has nothing to continue from: it runs again from step 0
    # and ends where a straight run ends.
    shutil.rmtree(only.run_dir / "final")
    (only.run_dir / "DONE").unlink()
    rerun = train(TrainConfig(DPOConfig(beta=0.5), training(save_only_model=True)), model, data, only.run_dir)
    assert rerun.resumed_from is None and not rerun.already_done
    assert metrics(only.run_dir) == metrics(full.run_dir)
    ours, theirs = weights(only.run_dir / "final"), weights(full.run_dir / "final")
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


def test_a_head_at_learning_rate_zero_keeps_its_initialisation_while_the_policy_trains(tiny_model_dirs, tmp_path):
    model, data = tiny_model_dirs["llama"], examples(8)
    method = SparsePOConfig(beta=0.5, mask="learned", heads="common", head_init_std=0.3, head_learning_rate=0.0)
    run = train(TrainConfig(method, training()), model, data, tmp_path / "control").run_dir
    start, end = load_file(str(run / "checkpoints" / "step-2" / HEAD_FILE)), load_file(str(run / "final" / HEAD_FILE))
    assert start.keys() == end.keys() and all(torch.equal(start[key], end[key]) for key in start)
    policy_start, policy_end = weights(run / "checkpoints" / "step-2"), weights(run / "final")
    assert any(not torch.equal(policy_start[key], policy_end[key]) for key in policy_end)

    trained = train(
        TrainConfig(SparsePOConfig(**{**vars(method), "head_learning_rate": 1e-2}), training()),
        model,
        data,
        tmp_path / "trained",
    ).run_dir
    moved = load_file(str(trained / "final" / HEAD_FILE))
    assert any(not torch.equal(moved[key], end[key]) for key in end)
