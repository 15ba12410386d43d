"""Held-out pairs in ``harness run`` and ``harness train``: the data stage writes them, every training
evaluates them, and settings added later leave the keys of runs made before them unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tokenpo.core.config import load_config, to_mapping
from tokenpo.core.fingerprint import fingerprint
from tokenpo.harness.cli import main
from tokenpo.harness.pipeline.config import RunConfig
from tokenpo.harness.pipeline.run import LATER_KEYS, Pipeline


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Say {i}.", "chosen": f" {i}, gladly.", "rejected": " No."} for i in range(12)]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = {
        "name": "tiny-held-out",
        "output_dir": str(tmp_path / "run"),
        "model": "tiny-llama",
        "data": {"path": str(pairs)},
        "methods": [{"name": "dpo", "method": {"name": "dpo", "beta": 0.1}}],
        "training": {
            "learning_rate": 1.0e-3,
            "per_device_batch_size": 2,
            "max_steps": 4,
            "max_length": 32,
            "max_prompt_length": 16,
        },
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 4}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_run_holds_out_a_seeded_share_and_every_training_evaluates_it(config_file):
    result = Pipeline(
        load_config(RunConfig, config_file, ["data.eval_fraction=0.25", "training.eval_steps=2"]), str(config_file)
    ).run()
    data = result.output / "data"
    trained = [json.loads(line) for line in (data / "pairs.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (data / "eval_pairs.jsonl").read_text().splitlines()]
    assert (len(trained), len(held)) == (9, 3)  # ⌈0.25 × 12⌉ held out
    assert not {row["prompt"] for row in trained} & {row["prompt"] for row in held}
    rows = [
        json.loads(line) for line in (result.output / "train" / "dpo-seed0" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows if "eval_loss" in row] == [2, 4]
    summary = json.loads((data / "stage.json").read_text())["summary"]
    assert (summary["pairs"], summary["held_out"]) == (9, 3)


def test_settings_added_later_leave_the_keys_of_earlier_runs_unchanged(config_file):
    # A run made before held-out pairs existed had these keys: the mappings without the later settings.
    config = load_config(RunConfig, config_file)
    pipeline = Pipeline(config, str(config_file))
    earlier_data = {k: v for k, v in to_mapping(config.data).items() if k not in LATER_KEYS["data"]}
    assert pipeline.data_stage().key == fingerprint({"base": pipeline.base_key, "data": earlier_data})
    stage = pipeline.stage_for("train/dpo-seed0")
    _, _, training = pipeline.trainings[0]
    from tokenpo.trainers import TrainConfig

    earlier = to_mapping(TrainConfig(config.methods[0].method, training))
    earlier["training"] = {k: v for k, v in earlier["training"].items() if k not in LATER_KEYS["training"]}
    assert stage.key == fingerprint({"base": pipeline.base_key, "data": pipeline.data_stage().key, "config": earlier})
    # Set, they are part of the key.
    held = Pipeline(load_config(RunConfig, config_file, ["data.eval_fraction=0.25"]), str(config_file))
    assert held.data_stage().key != pipeline.data_stage().key


@pytest.mark.parametrize(
    ("override", "expected"),
    [("data.eval_fraction=1.5", "data.eval_fraction: must lie strictly between 0 and 1, got 1.5"),
     ("data.eval_path=x.jsonl", None),
     ("training.eval_steps=-1", "training.eval_steps: must be 0 (after the last step) or positive, got -1")],
)  # fmt: skip
def test_bad_held_out_settings_are_refused_in_one_line(config_file, override, expected, capsys):
    extra = ["data.eval_fraction=0.25"] if override.startswith("data.eval_path") else []
    assert main(["run", str(config_file), override, *extra]) == 2
    error = capsys.readouterr().err
    expected = expected or "data.eval_path: give at most one of eval_fraction and eval_path"
    assert error.count("\n") == 1 and error.endswith(f"{expected}\n"), error


def test_harness_train_on_the_tiny_dpo_config_evaluates_the_held_out_quarter(benchmarks_dir, tmp_path, monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # the config's data path (../shared/benchmarks) is relative to the repository
    if not (repo.parent / "shared" / "benchmarks").is_dir():
        pytest.skip("configs/train-dpo-tiny.yaml reads ../shared/benchmarks, absent beside this checkout")
    out = tmp_path / "dpo-tiny"
    argv = ["train", "--config", "configs/train-dpo-tiny.yaml", "training.eval_steps=4", "data.eval_fraction=0.25"]
    assert main([*argv, f"output_dir={out}", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluated = [row["step"] for row in rows if "eval_loss" in row]
    assert evaluated == [4, 8, 12, 16]  # 16 steps: every 4th, the last among them
    card = (out / "final" / "README.md").read_text()
    assert "held-out pairs' value at their last evaluation (step 16)" in card
