"""Data mixtures and hub subsets: counts fixed by the weights (hand-computed), the same draw on every run,
recorded in the run folder and the card; the refusals name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tokenpo.harness.cli import main
from tokenpo.trainers.data import DataError, load_preferences
from tokenpo.trainers.data.mixture import MixedSource, mix, mixture_counts


@pytest.mark.parametrize(
    ("available", "weights", "total", "counts"),
    [
        ([100, 100], [3, 1], 8, [6, 2]),  # 8 · 3/4, 8 · 1/4
        ([100, 100, 100], [1, 1, 1], 10, [4, 3, 3]),  # 3.33 each: the remainder to the earliest
        ([100, 100], [2, 1], 10, [7, 3]),  # 6.67 and 3.33: the larger remainder wins the tenth pair
        ([10, 40], [1, 1], None, [10, 10]),  # the largest mix the first source can fill: 10 / ½ = 20
        ([10, 40], [1, 3], None, [10, 30]),  # ⌊min(10 / ¼, 40 / ¾)⌋ = 40
        ([10, 40], [0, 1], None, [0, 40]),  # a weight of 0 leaves the source out
    ],
)
def test_counts_follow_the_weights(available, weights, total, counts):
    assert mixture_counts(available, weights, total) == counts


def test_the_same_seed_draws_the_same_mixture_and_another_seed_another():
    a, b = MixedSource("a", [f"a{i}" for i in range(50)], 1.0), MixedSource("b", [f"b{i}" for i in range(50)], 3.0)
    mixed, counts = mix([a, b], 20, seed=0)
    assert counts == [5, 15] and len(mixed) == 20 and len(set(mixed)) == 20
    assert sum(p.startswith("a") for p in mixed) == 5
    assert mix([a, b], 20, seed=0) == (mixed, counts)
    assert mix([a, b], 20, seed=1)[0] != mixed


@pytest.mark.parametrize(
    ("weights", "total", "problem"),
    [([0, 0], None, "data.mixture: weight: weights must be ≥ 0 and sum to a positive number, got [0, 0]"),
     ([1, 1], 30, "b: weight: its share of 30 pairs is 15, but it has 10")],
)  # fmt: skip
def test_weights_that_cannot_make_the_mixture_are_refused(weights, total, problem):
    sources = [MixedSource("a", list(range(50)), weights[0]), MixedSource("b", list(range(10)), weights[1])]
    with pytest.raises(DataError) as raised:
        mix(sources, total, seed=0)
    assert str(raised.value) == problem


def _pairs(path: Path, tag: str, count: int) -> Path:
    rows = [{"prompt": f"{tag} {i}?", "chosen": f" {tag} yes {i}.", "rejected": " No."} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def dataset_folder(tmp_path: Path) -> Path:
    """A dataset folder with two subsets, read by ``datasets.load_dataset`` offline as a hub dataset is."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    _pairs(folder / "helpful.jsonl", "helpful", 30)
    _pairs(folder / "harmless.jsonl", "harmless", 30)
    configs = [
        {"config_name": n, "data_files": [{"split": "train", "path": f"{n}.jsonl"}]} for n in ("helpful", "harmless")
    ]
    (folder / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}) + "---\n")
    return folder


def test_a_subset_is_read_by_name_and_one_the_dataset_lacks_is_refused(dataset_folder):
    pairs = load_preferences(str(dataset_folder), name="harmless").examples
    assert len(pairs) == 30 and pairs[0].prompt.startswith("harmless")
    with pytest.raises(DataError) as raised:
        load_preferences(str(dataset_folder), name="honest")
    assert str(raised.value) == f"{dataset_folder}: name: no subset 'honest'; the dataset has helpful, harmless"
    with pytest.raises(DataError, match=r"a subset \('x'\) applies to hub datasets, not to files"):
        load_preferences(str(dataset_folder / "helpful.jsonl"), name="x")


def test_harness_train_mixes_two_sources_in_proportion_and_records_it(dataset_folder, tiny_model_dirs, tmp_path):
    local = _pairs(tmp_path / "local.jsonl", "local", 40)
    config = {
        "model": tiny_model_dirs["llama"],
        "output_dir": str(tmp_path / "run"),
        "data": {
            "mixture": [
                {"path": str(local), "weight": 1},
                {"path": str(dataset_folder), "name": "helpful", "weight": 3},
            ],
            "limit": 24,
            "seed": 5,
        },
        "method": {"name": "dpo"},
        "training": {"per_device_batch_size": 4, "max_steps": 2, "max_length": 32, "max_prompt_length": 16},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data_mixture"]
    label = f"{dataset_folder}:helpful[train]"
    assert recorded == [
        {"label": str(local), "weight": 1.0, "available": 40, "drawn": 6},
        {"label": label, "weight": 3.0, "available": 30, "drawn": 18},
    ]
    card = (tmp_path / "run" / "final" / "README.md").read_text()
    assert f"a mixture of 24 preference pairs: 6 from `{local}` (weight 1), 18 from `{label}` (weight 3)" in card


def test_mixture_settings_are_refused_in_one_line_naming_the_key(tmp_path, capsys):
    base = {"model": "tiny-llama", "output_dir": str(tmp_path / "run"), "method": {"name": "dpo"}}
    exactly_one = "give exactly one of data.path (a preference file or hub dataset), data.mixture and data.sentiment"
    cases = [
        ({"mixture": [{"path": "a.jsonl", "weight": 0}]},
         "data.mixture: the weights must sum to a positive number, got [0.0]"),
        ({"mixture": [{"path": "a.jsonl", "weight": -1}]},
         "data.mixture[0].weight: must be a finite number ≥ 0, got -1.0"),
        ({"path": "a.jsonl", "mixture": [{"path": "b.jsonl"}]}, f"data.path: {exactly_one}"),
    ]  # fmt: skip
    for data, expected in cases:
        path = tmp_path / "train.yaml"
        path.write_text(yaml.safe_dump({**base, "data": data}))
        assert main(["train", "--config", str(path)]) == 2
        error = capsys.readouterr().err
        assert error == f"error: {path}: {expected}\n"


def test_a_run_mixes_in_its_data_stage_and_its_cards_say_so(tmp_path):
    from tokenpo.core.config import load_config
    from tokenpo.harness.pipeline.config import RunConfig
    from tokenpo.harness.pipeline.run import Pipeline

    first, second = _pairs(tmp_path / "first.jsonl", "first", 20), _pairs(tmp_path / "second.jsonl", "second", 20)
    config = {
        "name": "mix",
        "output_dir": str(tmp_path / "run"),
        "model": "tiny-llama",
        "data": {"mixture": [{"path": str(first), "weight": 1}, {"path": str(second), "weight": 1}], "limit": 12,
                 "eval_fraction": 0.25},
        "methods": [{"name": "dpo", "method": {"name": "dpo"}}],
        "training": {"per_device_batch_size": 3, "max_steps": 2, "max_length": 32, "max_prompt_length": 16},
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 4}},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = Pipeline(load_config(RunConfig, path), str(path)).run()
    data = result.output / "data"
    assert json.loads((data / "mixture.json").read_text()) == [
        {"label": str(first), "weight": 1.0, "available": 20, "drawn": 6},
        {"label": str(second), "weight": 1.0, "available": 20, "drawn": 6},
    ]
    # The held-out quarter is drawn from the mixture: 9 pairs to train on, 3 held out.
    summary = json.loads((data / "stage.json").read_text())["summary"]
    assert (summary["pairs"], summary["held_out"], summary["mixture"]) == (9, 3, {str(first): 6, str(second): 6})
    card = (result.output / "train" / "dpo-seed0" / "final" / "README.md").read_text()
    assert f"a mixture of 12 preference pairs: 6 from `{first}` (weight 1), 6 from `{second}` (weight 1)" in card
