"""Every configuration the project ships is valid (read through the same loader as the commands)."""

from pathlib import Path

import pytest

from tokenpo.core.config import load_config
from tokenpo.harness.commands.train import TrainJob
from tokenpo.harness.pipeline.config import RunConfig, method_training

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("train-"))
TRAIN_CONFIGS = sorted(CONFIGS.glob("train-*.yaml"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_pipeline_configs_are_valid(path):
    config = load_config(RunConfig, path)
    for index in range(len(config.methods)):
        method_training(config, index, str(path))
    assert config.report.baseline in {run.name for run in config.methods}


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_training_configs_are_valid(path):
    assert load_config(TrainJob, path).output_dir


def test_the_shipped_configs_are_all_covered():
    assert {p.name for p in RUN_CONFIGS} >= {
        "quickstart.yaml",
        "ci-dogfood.yaml",
        "paper-sparsepo-imdb.yaml",
        "paper-sparsepo-hh.yaml",
        "paper-tidpo.yaml",
    }


# Below this learning rate an AdamW update is smaller than bf16's resolution for most weights
# (docs/training.md, Precision): bf16 weights would round it away.
BF16_WEIGHTS_MIN_LR = 1e-4


def _trainings(path: Path):
    if path.name.startswith("train-"):
        yield load_config(TrainJob, path).training
        return
    config = load_config(RunConfig, path)
    for index in range(len(config.methods)):
        yield method_training(config, index, str(path))


@pytest.mark.parametrize("path", RUN_CONFIGS + TRAIN_CONFIGS, ids=lambda p: p.name)
def test_no_shipped_config_trains_bf16_weights_at_a_learning_rate_they_round_away(path):
    for training in _trainings(path):
        assert training.model_dtype == "float32" or training.learning_rate >= BF16_WEIGHTS_MIN_LR, path.name
