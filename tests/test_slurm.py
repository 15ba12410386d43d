"""The slurm executor through a real one-node Slurm (``scripts/slurm-local``, Debian's slurm-wlm and munge).

A sweep of 2 methods × 2 β × 2 seeds run as Slurm jobs gives the local executor's results run for
run; a training job cancelled mid-way (``scancel``) is submitted again by the next ``harness run``
and ends with the weights of an uninterrupted run. Skipped, with the reason, only where Slurm
cannot start (its programs are not installed, or not root).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import ENV, outcome

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    script = REPO / "scripts" / "slurm-local"
    started = subprocess.run(["bash", str(script), "start", str(folder)], capture_output=True, text=True, timeout=180)
    if started.returncode == 3:
        pytest.skip(f"Slurm cannot start here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr + started.stdout
    yield {**ENV, "SLURM_CONF": started.stdout.strip().splitlines()[-1]}
    subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True, timeout=120)


def _config(output: Path, executor: str, checkpoints: str = "all", **training) -> dict:
    return {
        "name": "grid",
        "output_dir": str(output),
        "model": "tiny-llama",
        # 10 held-out openings: the fewest the leaderboard compares (fewer make the judge a smoke check)
        "data": {"sentiment": {"train_prompts": 24, "eval_prompts": 10, "completions_per_prompt": 3,
                               "max_new_tokens": 8, "min_margin": 0.0}},
        "methods": [
            {"name": "dpo", "method": {"name": "dpo"}},
            {"name": "sparsepo", "method": {"name": "sparsepo", "mask": "activation"}},
        ],
        "training": {"learning_rate": 1.0e-3, "per_device_batch_size": 2, "max_steps": 4, "save_every": 2,
                     "max_length": 32, "max_prompt_length": 16, **training},
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 6}, "checkpoints": checkpoints},
        "report": {"baseline": "dpo-beta0.1", "html": False},
        "sweep": {"grid": {"method.beta": [0.1, 0.5]}, "seeds": [0, 1]},
        "executor": {"kind": executor, "slurm": {"cpus_per_task": 1, "array_parallelism": 2, "train_minutes": 10,
                                                 "eval_minutes": 10}},
    }  # fmt: skip


def _harness(config: dict, folder: Path, env: dict, *options: str, check: bool = True) -> subprocess.CompletedProcess:
    path = folder / f"{config['executor']['kind']}.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "tokenpo", "run", str(path), "--no-progress", *options],
                          env=env, capture_output=True, text=True, timeout=1800)  # fmt: skip
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_a_sweep_through_slurm_gives_the_local_results_run_for_run(slurm_env, tmp_path):
    local, scheduled = tmp_path / "local", tmp_path / "slurm"
    _harness(_config(local, "local"), tmp_path, ENV)
    submitted = _harness(_config(scheduled, "slurm"), tmp_path, slurm_env, "--wait")
    # The job graph: the trainings one array, each evaluation after its training, the report after all.
    jobs = json.loads((scheduled / "slurm" / "jobs.json").read_text())
    trainings = [name for name in jobs if name.startswith("train/")]
    assert len(trainings) == 8 and len({jobs[n]["job"].split("_")[0] for n in trainings}) == 1
    for name in trainings:
        assert jobs[name.replace("train/", "eval/")]["after"] == [jobs["data"]["job"], jobs[name]["job"]]
    assert set(jobs["report"]["after"]) == {jobs[n]["job"] for n in jobs if n.startswith("eval/")}
    assert "train/sparsepo-beta0.5-seed1" in submitted.stdout

    assert outcome(scheduled) == outcome(local)
    # each evaluation job evaluated its run's checkpoint (step 2) too, as the local run did
    checkpoints = [sorted(out.glob("eval/*/steps/step-2/sentiment/results.json")) for out in (local, scheduled)]
    assert len(checkpoints[1]) == 8
    assert [json.loads(p.read_text())["results"] for p in checkpoints[1]] == [
        json.loads(p.read_text())["results"] for p in checkpoints[0]
    ]
    boards = [json.loads((out / "summary.json").read_text())["leaderboard"] for out in (local, scheduled)]
    assert boards[0] == boards[1] and boards[0]["verdicts"]  # matched-KL verdicts along the paths, alike
    assert {row["method"] for row in boards[0]["rows"]} >= {"dpo-beta0.1", "sparsepo-beta0.5"}

    again = _harness(_config(scheduled, "slurm"), tmp_path, slurm_env)  # everything finished: nothing to submit
    assert "nothing to submit" in again.stdout
    status = _harness(_config(scheduled, "slurm"), tmp_path, slurm_env, "--status")
    assert all(line.split()[1] == "done" for line in status.stdout.strip().splitlines())


def test_a_cancelled_training_job_is_submitted_again_and_ends_as_an_uninterrupted_run(slurm_env, tmp_path):
    from safetensors.torch import load_file

    def config(output: Path, executor: str) -> dict:
        settings = _config(output, executor, checkpoints="final", max_steps=200, save_every=5)
        settings.update(methods=settings["methods"][:1], sweep=None, report={"baseline": "dpo", "html": False})
        return settings

    local, scheduled = tmp_path / "local", tmp_path / "slurm"
    _harness(config(local, "local"), tmp_path, ENV)
    _harness(config(scheduled, "slurm"), tmp_path, slurm_env)
    training = scheduled / "train" / "dpo-seed0"
    deadline = time.monotonic() + 600
    while not list(training.glob("checkpoints/step-*")):  # committed, not one still being written (.partial-*)
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    job = json.loads((scheduled / "slurm" / "jobs.json").read_text())["train/dpo-seed0"]["job"]
    subprocess.run(["scancel", job], env=slurm_env, check=True)
    while subprocess.run(["squeue", "-h", "-j", job], env=slurm_env, capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    assert not (training / "stage.json").exists()  # cancelled before the end
    status = _harness(config(scheduled, "slurm"), tmp_path, slurm_env, "--status", check=False)
    assert "train/dpo-seed0" in status.stdout and "failed" in status.stdout

    resumed = _harness(config(scheduled, "slurm"), tmp_path, slurm_env, "--wait")
    assert "train/dpo-seed0" in resumed.stdout  # submitted again
    summary = json.loads((training / "stage.json").read_text())["summary"]
    assert summary["resumed_from"] is not None
    weights = [load_file(out / "train" / "dpo-seed0" / "final" / "model.safetensors") for out in (local, scheduled)]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])
