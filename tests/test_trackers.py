"""Trackers (``training.report_to``): each one receives exactly the scalars of ``metrics.jsonl`` (same keys,
steps and values) and keeps its files under the run folder, read back here from the tracker's own store;
a tracker whose package is missing stops the run in one line before any work; ``log_scalars`` files a
model's results as a run of a group.

A tracker whose package is not installed has its tests skipped, naming the package (the ``test`` extra
installs all four).
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from trainer_helpers import examples, metrics, write_jsonl

from tokenpo.harness.cli import main
from tokenpo.trainers import DPOConfig, TrainConfig, TrainingConfig, TrainingError, trackers, train
from tokenpo.trainers.config import ConfigValueError
from tokenpo.trainers.trackers import TRACKERS, log_scalars, trackers_dir

# What each tracker received: metric name -> [(step, value), ...] in step order.
Series = dict[str, list[tuple[int, float]]]
MLFLOW_MODULES = ("mlflow", "sqlalchemy", "alembic")


def missing(name: str) -> str | None:
    """The first package tracker ``name`` needs here that is not installed (None: none is missing)."""
    modules = MLFLOW_MODULES if name == "mlflow" else (name,)
    return next((module for module in modules if importlib.util.find_spec(module) is None), None)


def require(name: str) -> None:
    if missing(name) is not None:
        pytest.skip(f"{name}: the {missing(name)} package is not installed (pip install 'tokenpo-harness[{name}]')")


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    """Every tracker offline and writing under ``tmp_path`` only, from an empty working directory
    ``tmp_path/cwd``; returns trackio's store (it has no per-run folder). mlflow.set_tracking_uri sets
    MLFLOW_TRACKING_URI: set, then deleted here, it is removed afterwards."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    for variable in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TAGS", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb-home"))
    store = tmp_path / "trackio"
    monkeypatch.setenv("TRACKIO_DIR", str(store))
    for name, module in list(sys.modules.items()):  # trackio reads TRACKIO_DIR once, when imported
        if name.startswith("trackio") and hasattr(module, "TRACKIO_DIR"):
            monkeypatch.setattr(module, "TRACKIO_DIR", store)
    return store


def settings(**overrides) -> TrainingConfig:
    values = dict(
        learning_rate=3e-3,
        per_device_batch_size=2,
        max_steps=3,
        warmup_ratio=0.0,
        lr_scheduler="linear",  # a learning rate that changes every step: the steps must line up
        token_scores_examples=0,
        seed=7,
    )
    values.update(overrides)
    return TrainingConfig(**values)


def series(rows: list[dict]) -> Series:
    """``metrics.jsonl`` rows as trackers get them: every key but ``step``, at that step."""
    found: Series = {}
    for row in rows:
        for key, value in row.items():
            if key != "step":
                found.setdefault(key, []).append((row["step"], value))
    return found


def assert_same(received: Series, expected: Series, rounding: Callable[[float], float] = float) -> None:
    """Same names, steps and values; ``rounding``: what the tracker's storage does to a float64."""
    assert sorted(received) == sorted(expected)
    for key, points in expected.items():
        want = [(step, rounding(value)) for step, value in points]
        got = [(step, float(value)) for step, value in received[key]]
        assert [step for step, _ in got] == [step for step, _ in want], key
        for (_, a), (_, b) in zip(got, want):
            assert a == b or (math.isnan(a) and math.isnan(b)), (key, got, want)


# ---------------------------------------------------------------- reading each tracker's store


def tensorboard_scalars(project_dir: Path, group: str | None, run_name: str) -> tuple[Series, Callable]:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    folder = trackers_dir(project_dir) / (run_name if group is None else f"{group}/{run_name}")
    events = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    events.Reload()
    found = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return found, _float32


def _float32(value: float) -> float:
    """TensorBoard's scalar events hold float32."""
    return struct.unpack("f", struct.pack("f", value))[0]


def mlflow_scalars(project_dir: Path, group: str | None, run_name: str) -> tuple[Series, Callable]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{trackers_dir(project_dir).resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(group or run_name)
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == run_name]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    if group is not None:
        assert runs[0].data.tags["group"] == group
    found = {
        key: sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, key))
        for key in runs[0].data.metrics
    }
    return found, float


def wandb_scalars(project_dir: Path, group: str | None, run_name: str) -> tuple[Series, Callable]:
    """The offline run's history, read from its transaction log (``run-ID.wandb``): W&B's LevelDB-style log
    of protobuf records (a 7-byte file header, 32 KiB blocks, each chunk with a 7-byte header: checksum,
    length, type)."""
    from wandb.proto import wandb_internal_pb2

    found: Series = {}
    matched = 0
    for log in sorted(trackers_dir(project_dir).glob("wandb/offline-run-*/run-*.wandb")):
        records = [wandb_internal_pb2.Record.FromString(data) for data in _leveldb_records(log.read_bytes())]
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        if run.display_name != run_name:
            continue
        matched += 1
        assert run.project == (group or run_name) and run.run_group == (group or "")
        for record in records:
            if record.WhichOneof("record_type") == "history":
                for item in record.history.item:
                    key = item.key or "/".join(item.nested_key)
                    if not key.startswith("_"):  # wandb's own _step, _runtime, _timestamp
                        found.setdefault(key, []).append((record.history.step.num, json.loads(item.value_json)))
    assert matched == 1
    return found, float


def _leveldb_records(data: bytes, block: int = 32768) -> list[bytes]:
    assert data[:4] == b":W&B"
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL, LAST
            records.append(pending)
            pending = b""
    return records


def trackio_scalars(store: Path, group: str | None, run_name: str) -> tuple[Series, Callable]:
    import trackio
    from trackio.sqlite_storage import SQLiteStorage

    project = group or run_name
    (run,) = [r for r in trackio.Api().runs(project) if r.name == run_name]
    if group is not None:
        assert run.config["_Group"] == group
    found: Series = {}
    for row in SQLiteStorage.get_logs(project, run_name):
        for key, value in row.items():
            if key not in ("step", "timestamp"):
                found.setdefault(key, []).append((row["step"], value))
    return found, float


READERS = {
    "tensorboard": tensorboard_scalars,
    "wandb": wandb_scalars,
    "trackio": trackio_scalars,
    "mlflow": mlflow_scalars,
}


def received(name: str, project_dir: Path, trackio_store: Path, group: str | None, run_name: str):
    return READERS[name](trackio_store if name == "trackio" else project_dir, group, run_name)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("name", TRACKERS)
def test_each_tracker_receives_the_metrics_rows(tiny_model_dirs, tmp_path, offline, name):
    require(name)
    config = TrainConfig(DPOConfig(beta=0.5), settings(report_to=[name]))
    result = train(config, tiny_model_dirs["llama"], examples(4), tmp_path / "run")
    rows = metrics(result.run_dir)
    assert [row["step"] for row in rows] == [1, 2, 3]
    found, rounding = received(name, result.run_dir, offline, None, result.run_dir.name)
    assert_same(found, series(rows), rounding)
    if name != "trackio":  # trackio keeps its own store (TRACKIO_DIR)
        assert trackers_dir(result.run_dir).is_dir()
    assert list(Path.cwd().iterdir()) == []  # nothing in the directory the run was started from


def test_several_trackers_at_once_each_receive_every_row(tiny_model_dirs, tmp_path, offline):
    installed = [name for name in TRACKERS if missing(name) is None]
    if len(installed) < 2:
        pytest.skip(f"fewer than two trackers installed ({', '.join(installed) or 'none'})")
    config = TrainConfig(DPOConfig(beta=0.5), settings(report_to=installed, max_steps=2))
    result = train(config, tiny_model_dirs["gpt2"], examples(4), tmp_path / "run")
    expected = series(metrics(result.run_dir))
    for name in installed:
        found, rounding = received(name, result.run_dir, offline, None, result.run_dir.name)
        assert_same(found, expected, rounding)


# ---------------------------------------------------------------- a missing package


def _no_package(monkeypatch, missing: str) -> None:
    monkeypatch.setattr(trackers, "_installed", lambda module: module != missing)


def _no_work(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the run started work before checking its trackers")

    monkeypatch.setattr("tokenpo.trainers.run.load_training_tokenizer", refuse)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("mlflow", "training.report_to: mlflow needs the mlflow package: pip install 'tokenpo-harness[mlflow]'"),
        (
            "sqlalchemy",
            "training.report_to: mlflow needs the sqlalchemy package for its local store: "
            "pip install 'tokenpo-harness[mlflow]'",
        ),
    ],
)
def test_a_missing_tracker_package_stops_the_run_before_any_work(tmp_path, offline, monkeypatch, missing, message):
    _no_package(monkeypatch, missing)
    _no_work(monkeypatch)
    config = TrainConfig(DPOConfig(), TrainingConfig(report_to=["tensorboard", "mlflow"]))
    with pytest.raises(TrainingError) as caught:
        train(config, "no-model-is-loaded", examples(4), tmp_path / "run")
    assert str(caught.value) == message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", TRACKERS)
def test_every_tracker_names_its_own_extra(offline, monkeypatch, name):
    _no_package(monkeypatch, name)
    with pytest.raises(TrainingError) as caught:
        trackers.check_trackers(TRACKERS)
    assert str(caught.value) == (
        f"training.report_to: {name} needs the {name} package: pip install 'tokenpo-harness[{name}]'"
    )


def test_mlflow_with_a_tracking_server_needs_no_local_store(offline, monkeypatch):
    _no_package(monkeypatch, "sqlalchemy")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    trackers.check_trackers(["mlflow"])  # the server keeps the runs: SQLAlchemy is not needed here


def test_harness_train_refuses_a_missing_tracker_in_one_line(tiny_model_dirs, tmp_path, offline, monkeypatch, capsys):
    _no_package(monkeypatch, "wandb")
    data = write_jsonl(tmp_path / "prefs.jsonl", examples(4))
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: {tiny_model_dirs['llama']}\ndata: {{path: {data}}}\noutput_dir: {tmp_path / 'run'}\n"
        "method: {name: dpo}\ntraining: {per_device_batch_size: 2, max_steps: 1}\n"
    )
    assert main(["train", "--config", str(config), "--no-progress", "training.report_to=[wandb]"]) == 2
    assert capsys.readouterr().err == (
        "error: training.report_to: wandb needs the wandb package: pip install 'tokenpo-harness[wandb]'\n"
    )
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the configuration


def test_report_to_takes_exactly_the_trackers_this_module_knows():
    (item,) = typing.get_args(typing.get_type_hints(TrainingConfig)["report_to"])
    assert typing.get_args(item) == TRACKERS


def test_a_tracker_listed_twice_is_refused():
    with pytest.raises(ConfigValueError, match=r"^report_to: lists wandb more than once$"):
        TrainingConfig(report_to=["wandb", "tensorboard", "wandb"])


# ---------------------------------------------------------------- log_scalars


@pytest.mark.parametrize("name", TRACKERS)
def test_log_scalars_files_each_model_as_a_run_of_the_group(tmp_path, offline, name):
    require(name)
    project = tmp_path / "job"
    results = {
        "dpo-seed0": {"benchmarks/gsm8k": 0.25, "sentiment/win_rate": 0.625},
        "tdpo-seed0": {"benchmarks/gsm8k": 0.3125, "sentiment/win_rate": 0.5},
    }
    for run_name, scalars in results.items():
        log_scalars([name], project, run_name, "eval", scalars, step=40)
    for run_name, scalars in results.items():
        found, rounding = received(name, project, offline, "eval", run_name)
        assert_same(found, {key: [(40, value)] for key, value in scalars.items()}, rounding)


def test_log_scalars_with_no_tracker_does_nothing(tmp_path):
    log_scalars([], tmp_path / "job", "dpo-seed0", "eval", {"x": 1.0}, step=1)
    assert not (tmp_path / "job").exists()


def test_log_scalars_refuses_a_missing_package_with_its_key(tmp_path, monkeypatch):
    _no_package(monkeypatch, "tensorboard")
    with pytest.raises(TrainingError, match=r"^report_to: tensorboard needs the tensorboard package: "):
        log_scalars(["tensorboard"], tmp_path / "job", "dpo-seed0", "eval", {"x": 1.0})
    assert not (tmp_path / "job").exists()


def test_a_run_logs_its_trainings_and_each_models_evaluation_under_its_name(tmp_path, offline):
    # harness run: the trainings' rows and, after the report, each trained model's results and leaderboard
    # row, one tracker run per trained model, all filed under the pipeline's name.
    import yaml

    from tokenpo.core.config import load_config
    from tokenpo.harness.pipeline.config import RunConfig
    from tokenpo.harness.pipeline.run import Pipeline

    require("tensorboard")
    data = write_jsonl(tmp_path / "pairs.jsonl", examples(8))
    config = {
        "name": "tracked",
        "output_dir": str(tmp_path / "run"),
        "model": "tiny-llama",
        "data": {"path": str(data)},
        "methods": [{"name": "dpo", "method": {"name": "dpo"}}, {"name": "tdpo", "method": {"name": "tdpo"}}],
        "training": {"per_device_batch_size": 2, "max_steps": 2, "max_length": 32, "max_prompt_length": 16,
                     "report_to": ["tensorboard"]},
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 4}},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = Pipeline(load_config(RunConfig, path), str(path)).run()
    folder = result.output / "train" / "tdpo-seed0"
    trained, _ = tensorboard_scalars(folder, "tracked", "tdpo-seed0")
    assert_same(trained, series(metrics(folder)), _float32)
    evaluated, _ = tensorboard_scalars(folder, "tracked", "tdpo-seed0-evaluation")
    sentiment = json.loads((result.output / "eval" / "tdpo-seed0" / "sentiment" / "results.json").read_text())
    rate = sentiment["results"]["sentiment"]["positive_rate,none"]
    assert evaluated["eval/sentiment/positive_rate,none"] == [(2, _float32(rate))]
    summary = json.loads((result.output / "summary.json").read_text())["leaderboard"]
    row = next(r for r in summary["rows"] if r["method"] == "tdpo" and r["benchmark"] == "sentiment")
    assert evaluated["leaderboard/Positive rate"] == [(2, _float32(row["score"]))]
    assert evaluated["leaderboard/Δ Positive rate"] == [(2, _float32(row["delta"]))]
    # Running again rewrites the report but logs the evaluation no second time.
    Pipeline(load_config(RunConfig, path), str(path)).run()
    assert tensorboard_scalars(folder, "tracked", "tdpo-seed0-evaluation")[0] == evaluated
