"""After a run: `--status` of a local run, one run at a time per folder, and `harness eval` finding the
run's prepared benchmark data (or saying in one line what to run)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from test_pipeline import tiny_config

from tokenpo.core.config import load_config
from tokenpo.harness.cli import main
from tokenpo.harness.commands.evaluation import data_source
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.pipeline import local
from tokenpo.harness.pipeline.config import RunConfig
from tokenpo.harness.pipeline.run import Pipeline


@pytest.fixture
def pipeline(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "out", None)))
    return Pipeline(load_config(RunConfig, str(path), []), str(path)), path


def test_status_of_a_local_run_shows_each_stage_from_its_markers(pipeline, capsys):
    pipe, config = pipeline
    names = [stage.name for stage in pipe.plan()]
    assert {s.state for s in local.status(pipe)} == {"not started"}
    data = pipe.stage_for("data")
    data.prepare()
    data.finish({"seconds": 58.4})
    pipe.stage_for("train/dpo-seed0").prepare()  # started, then killed: a key file, no marker
    states = {s.stage: (s.state, s.detail) for s in local.status(pipe)}
    assert states["data"] == ("done", "58 s")
    assert states["train/dpo-seed0"] == ("stopped", "stopped midway; `harness run` continues it")
    assert [s.stage for s in local.status(pipe)] == names
    with local.running(pipe.output):  # a run working in the folder now
        assert local.status(pipe)[names.index("train/dpo-seed0")].state == "running"
    (pipe.output / "train" / "sparsepo-seed0").mkdir(parents=True)
    (pipe.output / "train" / "sparsepo-seed0" / "stage-key").write_text("inputs that changed\n")
    assert local.status(pipe)[names.index("train/sparsepo-seed0")].state == "outdated"

    assert main(["run", str(config), "--status"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].split() == ["data", "done", "58", "s"]
    assert [line.split()[0] for line in shown] == names
    assert "squeue" not in "".join(shown)


def test_a_second_run_in_the_same_folder_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    refused = pytest.raises(HarnessError, match=r"another `harness run` \(pid \d+\) is running in this folder")
    with local.running(tmp_path), refused, local.running(tmp_path):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time, pathlib
        from tokenpo.harness.pipeline import local
        with local.running(pathlib.Path({str(tmp_path)!r})):
            print("holding", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "holding\n"
    assert local.running_pid(tmp_path) == holder.pid
    holder.kill()
    holder.wait()
    assert local.running_pid(tmp_path) is None
    with local.running(tmp_path):  # the kernel released the killed run's lock
        pass


def test_eval_uses_the_runs_prepared_data_then_the_default_then_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "default"))
    model = tmp_path / "runs" / "q" / "train" / "dpo-seed0" / "final"
    model.mkdir(parents=True)
    with pytest.raises(HarnessError) as refused:
        data_source(None, False, str(model))
    assert str(refused.value) == (
        f"no prepared benchmark data (looked in {tmp_path / 'default'}) and the hub cannot be reached: run "
        "`harness data prepare --from DIR` (DIR: the benchmark data folder), or pass --data-dir FOLDER"
    )
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "manifest.json").write_text(json.dumps({}))
    assert data_source(None, False, str(model)) == tmp_path / "default"
    mirror = tmp_path / "runs" / "q" / "benchmark-data" / "mirror"
    mirror.mkdir(parents=True)
    (mirror / "manifest.json").write_text(json.dumps({}))
    assert data_source(None, False, str(model)) == mirror  # the data the run's own evaluations used
    assert data_source(None, True, str(model)) is None  # --online


def test_eval_without_data_or_hub_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "none"))
    assert main(["eval", "--model", "tiny-llama", "--tasks", "gsm8k", "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no prepared benchmark data")


def test_next_commands_call_the_harness_the_way_it_works_when_pasted(tmp_path, monkeypatch):
    from tokenpo.harness.commands.run import harness_command

    script = tmp_path / ".tox" / "quickstart" / "bin" / "harness"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    elsewhere = tmp_path / "clone"
    elsewhere.mkdir()
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    monkeypatch.chdir(tmp_path)  # tox's environment lies below: its path, since tox's PATH is gone after tox
    assert harness_command() == ".tox/quickstart/bin/harness"
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("PATH", str(script.parent))  # installed, on the PATH: its name
    assert harness_command() == "harness"
    monkeypatch.setenv("PATH", "/nonexistent")  # neither: the absolute path
    assert harness_command() == str(script)
    monkeypatch.setattr(sys, "argv", ["/x/tokenpo/__main__.py", "run"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    assert harness_command() == f"{tmp_path / 'venv' / 'bin' / 'python'} -m tokenpo"
