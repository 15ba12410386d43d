"""The slurm executor's parts that need no cluster: the commands its jobs run and the sbatch options."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_pipeline import ENV
from trainer_helpers import examples, write_jsonl

from tokenpo.core.config import load_config
from tokenpo.harness.pipeline.config import RunConfig
from tokenpo.harness.pipeline.executor import SlurmSettings
from tokenpo.harness.pipeline.run import Pipeline
from tokenpo.harness.pipeline.slurm import StageJob, _parameters, freeze, stage_command
from tokenpo.harness.pipeline.stages import PlannedStage

TRAIN = PlannedStage("train", "dpo-seed0")


def test_jobs_run_one_stage_in_one_process_or_a_training_through_accelerate():
    frozen = Path("/runs/x/slurm/run-config.yaml")
    single = stage_command(frozen, TRAIN, SlurmSettings())
    assert single == [sys.executable, "-m", "tokenpo", "run", str(frozen), "--stage", "train/dpo-seed0",
                      "--no-progress"]  # fmt: skip
    four = stage_command(frozen, TRAIN, SlurmSettings(processes_per_node=4, gpus_per_node=4))
    assert four[1:6] == ["-m", "accelerate.commands.launch", "--num_processes", "4", "--multi_gpu"]
    assert four[-7:] == single[1:]
    # Evaluations stay one process whatever the training does.
    assert stage_command(frozen, PlannedStage.parse("eval/base"), SlurmSettings(processes_per_node=4)) == [
        sys.executable, "-m", "tokenpo", "run", str(frozen), "--stage", "eval/base", "--no-progress"]  # fmt: skip
    nodes = SlurmSettings(nodes=2, processes_per_node=8, accelerate_config="fsdp.yaml")
    launch = stage_command(frozen, TRAIN, nodes)
    assert launch[launch.index("--num_processes") + 1] == "16"
    assert launch[launch.index("--config_file") + 1] == "fsdp.yaml"
    assert "--machine_rank" in launch and "--main_process_ip" in launch  # filled in on each node by the job


def test_sbatch_options_follow_the_settings():
    settings = SlurmSettings(partition="gpu", account="lab", gpus_per_node=8, eval_gpus=1, mem_gb=64, nodes=2,
                             accelerate_config="multi.yaml", extra={"qos": "high"}, array_parallelism=3)  # fmt: skip
    train = _parameters(settings, TRAIN, ["11"], count=4)
    assert train["partition"] == "gpu" and train["gpus_per_node"] == 8 and train["nodes"] == 2
    assert train["time"] == 240 and train["mem"] == "64GB" and train["array_parallelism"] == 3
    assert train["additional_parameters"] == {"kill-on-invalid-dep": "yes", "qos": "high", "dependency": "afterok:11",
                                              "account": "lab"}  # fmt: skip
    evaluation = _parameters(settings, PlannedStage.parse("eval/base"), [], count=1)
    assert evaluation["gpus_per_node"] == 1 and evaluation["nodes"] == 1 and "array_parallelism" not in evaluation
    assert "dependency" not in evaluation["additional_parameters"]
    with pytest.raises(ValueError, match="accelerate_config"):
        SlurmSettings(nodes=2)


def test_the_frozen_config_gives_the_jobs_the_same_stages_and_fingerprints(tmp_path, monkeypatch):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "name": "grid", "output_dir": str(tmp_path / "out"), "model": "tiny-llama", "data": {"path": "pairs.jsonl"},
        "methods": [{"name": "dpo", "method": {"name": "dpo"}}, {"name": "tdpo", "method": {"name": "tdpo"}}],
        "report": {"baseline": "dpo"}, "eval": {"sentiment": None},
        "sweep": {"grid": {"method.beta": [0.1, 0.2]}, "methods": ["tdpo"], "seeds": [3, 4]},
    }))  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    monkeypatch.chdir(tmp_path)  # data.path is relative to the working folder
    submitted = Pipeline(load_config(RunConfig, path), str(path))
    again = Pipeline(load_config(RunConfig, freeze(submitted.config, submitted.output)), "frozen")
    assert [s.name for s in again.plan()] == [s.name for s in submitted.plan()]
    assert "train/tdpo-beta0.2-seed4" in [s.name for s in submitted.plan()]
    for stage in submitted.plan():
        assert again.stage_for(stage.name).key == submitted.stage_for(stage.name).key, stage.name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # two processes through accelerate launch (torchrun, gloo on the CPU): ~40 s on 2 cores
def test_a_training_job_on_two_processes_equals_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    config = {
        "name": "two", "model": "tiny-llama", "report": {"html": False},
        "data": {"path": str(write_jsonl(tmp_path / "pairs.jsonl", examples(8)))},
        "methods": [{"name": "dpo", "method": {"name": "dpo"}}],
        "training": {"learning_rate": 1.0e-3, "max_steps": 3, "max_length": 32, "max_prompt_length": 16},
    }  # fmt: skip
    runs = {}
    for name, per_device, processes in (("one", 4, 1), ("two", 2, 2)):
        settings = {**config, "output_dir": str(tmp_path / name),
                    "training": {**config["training"], "per_device_batch_size": per_device}}  # fmt: skip
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(settings))
        pipeline = Pipeline(load_config(RunConfig, path), str(path))
        pipeline.start()
        pipeline.run_stage("data")
        frozen = freeze(pipeline.config, pipeline.output)
        command = stage_command(frozen, TRAIN, SlurmSettings(processes_per_node=processes))
        if processes > 1:  # a free port: torchrun's default may be taken on a shared machine
            command[command.index("--multi_gpu") + 1 : command.index("--multi_gpu") + 1] = [
                "--main_process_port", str(_free_port())]  # fmt: skip
        for key, value in {**ENV, "ACCELERATE_USE_CPU": "1"}.items():
            monkeypatch.setenv(key, value)
        StageJob(command)()
        runs[name] = load_file(tmp_path / name / "train" / "dpo-seed0" / "final" / "model.safetensors")
        assert pipeline.stage_done("train/dpo-seed0")
    assert runs["one"].keys() == runs["two"].keys()
    for key, value in runs["one"].items():
        assert torch.allclose(runs["two"][key], value, rtol=0, atol=1e-5), key


def test_a_stage_name_is_read_in_one_place_and_round_trips():
    for name in ("data", "benchmark-data", "train/dpo-seed0", "eval/base", "report"):
        assert PlannedStage.parse(name).name == name
    assert PlannedStage.parse("train/tdpo-beta0.2-seed4") == PlannedStage("train", "tdpo-beta0.2-seed4")
    for wrong in ("train", "eval/", "report/x", "trian/dpo-seed0", ""):
        with pytest.raises(ValueError, match="no stage named"):
            PlannedStage.parse(wrong)
