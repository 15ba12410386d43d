"""``eval.checkpoints``: a pipeline evaluates saved checkpoints as well as final models, resumably, and
writes matched-KL verdicts along the runs' paths (tiny model, two seeds per method)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from test_pipeline import ENV

from tokenpo.harness.cli import main


def checkpoint_config(output, **eval_settings) -> dict:
    return {
        "name": "paths",
        "output_dir": str(output),
        "model": "tiny-llama",
        "data": {"sentiment": {"train_prompts": 24, "eval_prompts": 12, "completions_per_prompt": 3,
                               "max_new_tokens": 8, "min_margin": 0.0}},
        "methods": [
            {"name": "dpo", "method": {"name": "dpo", "beta": 0.1}, "seeds": [0, 1]},
            {"name": "tdpo", "method": {"name": "tdpo", "beta": 0.1}, "seeds": [0, 1]},
        ],
        "training": {"learning_rate": 1.0e-3, "per_device_batch_size": 2, "max_steps": 6, "save_every": 2,
                     "max_length": 32, "max_prompt_length": 16},
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 6}, "checkpoints": "all", **eval_settings},
    }  # fmt: skip


@pytest.fixture(scope="module")
def path_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paths")
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(checkpoint_config(folder / "out")))
    done = subprocess.run(
        [sys.executable, "-m", "tokenpo", "run", str(config), "--no-progress"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "out", config, done.stdout


def test_checkpoints_are_evaluated_with_their_step(path_run):
    output, _, _ = path_run
    for label in ("dpo-seed0", "dpo-seed1", "tdpo-seed0", "tdpo-seed1"):
        steps = sorted(p.name for p in (output / "eval" / label / "steps").iterdir())
        assert steps == ["step-2", "step-4"], label
        for step in (2, 4):
            harness = json.loads(
                (output / "eval" / label / "steps" / f"step-{step}" / "sentiment" / "results.json").read_text()
            )["harness"]
            assert (harness["step"], harness["final"]) == (step, False)
            assert harness["model_spec"].endswith(f"train/{label}/checkpoints/step-{step}")
        final = json.loads((output / "eval" / label / "sentiment" / "results.json").read_text())["harness"]
        assert (final["step"], final["final"]) == (6, True)
        samples = (output / "eval" / label / "sentiment" / "samples" / "sentiment.jsonl").read_text().splitlines()
        assert [json.loads(line)["prompt_id"] for line in samples] == list(range(12))  # one sample per prompt


def test_the_summary_holds_a_matched_kl_verdict_per_method(path_run):
    output, _, stdout = path_run
    summary = json.loads((output / "summary.json").read_text())
    verdict = summary["verdicts"]["tdpo"]
    assert {"kl", "delta", "low", "high", "covers", "seeds", "margin", "verdict"} <= set(verdict)
    assert verdict["seeds"] == [0, 1] and verdict["margin"] == 0.05 and verdict["steps"] == [0, 2, 4, 6]
    assert verdict["verdict"] in ("better", "worse", "equivalent", "inconclusive")
    assert verdict["kl"] == pytest.approx(
        next(p["kl_to_ref"]["value"] for p in summary["frontier"] if p["family"] == "dpo"), abs=1e-4
    )
    paths = summary["paths"]  # what the verdicts read: every run's points from the base model's (step 0)
    assert set(paths) == {"dpo-seed0", "dpo-seed1", "tdpo-seed0", "tdpo-seed1"}
    assert [p["step"] for p in paths["tdpo-seed1"]] == [0, 2, 4, 6] and paths["tdpo-seed1"][0]["kl"] == 0
    for step, point in zip(("steps/step-2/", "steps/step-4/", ""), paths["tdpo-seed1"][1:], strict=True):
        scores = json.loads((output / "eval" / "tdpo-seed1" / f"{step}sentiment" / "results.json").read_text())
        reported = scores["results"]["sentiment"]
        assert (point["kl"], point["reward"]) == pytest.approx(
            (reported["kl_to_ref,none"], reported["positive_rate,none"]), abs=1e-4
        )
    assert stdout.startswith("## Verdicts at matched KL (baseline: dpo)") or "## Verdicts at matched KL" in stdout
    # the leaderboard's rows are final models only
    rows = {(r["method"], r["benchmark"]) for r in summary["leaderboard"]["rows"]}
    assert rows == {("base", "sentiment"), ("dpo", "sentiment"), ("tdpo", "sentiment")}
    html = (output / "report.html").read_text()
    assert 'id="verdicts"' in html and 'id="paths"' in html
    chart = ET.fromstring((output / "paths.svg").read_text())  # the report's paths chart, standalone
    lines = [element for element in chart.iter() if element.get("class") == "join"]
    assert sorted(line.find("{*}title").text for line in lines) == [
        "dpo seed 0",
        "dpo seed 1",
        "tdpo seed 0",
        "tdpo seed 1",
    ]


def test_every_run_lists_every_health_check(path_run):
    output, _, _ = path_run
    for health in sorted(output.glob("train/*/health.json")):
        checks = json.loads(health.read_text())["checks"]
        names = {check["name"] for check in checks}
        assert {
            "zero_masks",
            "small_multiplier",
            "flat_margins",
            "inflated_beta",
            "concentrated_weights",
            "static_masks",
            "kl_drift",
            "anchor_coverage",
        } <= names, health
        assert all(check["outcome"] in ("pass", "flag", "n/a") for check in checks)


def test_running_again_skips_the_checkpoints_already_evaluated(path_run):
    output, config, stdout = path_run
    markers = {p: p.stat().st_mtime_ns for p in output.glob("eval/**/stage.json")}
    assert any("steps" in p.parts for p in markers)
    again = subprocess.run(
        [sys.executable, "-m", "tokenpo", "run", str(config), "--no-progress"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0 and again.stdout == stdout
    assert {p: p.stat().st_mtime_ns for p in output.glob("eval/**/stage.json")} == markers


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["training"].update(save_every=0), "eval: checkpoints: all, but method 'dpo' saves none"),
        (lambda c: c["training"].update(keep_checkpoints=1), "keeps only the newest 1"),
        (lambda c: c["eval"].update(checkpoints=3), "every 3 steps, but method 'dpo' saves every 2"),
        (lambda c: c["eval"].update(checkpoints=0), "eval.checkpoints: must be final, all or a positive number"),
    ],
)
def test_checkpoints_that_are_not_kept_are_refused_at_the_edge(tmp_path, capsys, change, message):
    config = checkpoint_config(tmp_path / "out")
    change(config)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "run.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_other_evaluation_settings_in_the_same_folder_reuse_no_checkpoint_result(tmp_path):
    """A second run with two samples per opening re-evaluates every checkpoint; the first run's folders are
    moved aside whole (their checkpoint results with them), never read again."""
    config = checkpoint_config(tmp_path / "out")
    config["methods"] = config["methods"][:1]
    for samples in (1, 2):
        config["eval"]["sentiment"]["samples_per_prompt"] = samples
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "tokenpo", "run", str(tmp_path / "run.yaml"), "--no-progress"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    evaluated = tmp_path / "out" / "eval" / "dpo-seed0"
    rows = (evaluated / "steps" / "step-2" / "sentiment" / "samples" / "sentiment.jsonl").read_text().splitlines()
    assert [json.loads(row)["prompt_id"] for row in rows] == [i // 2 for i in range(24)]  # 12 openings × 2
    old = tmp_path / "out" / "eval" / "dpo-seed0.superseded-1" / "steps" / "step-2" / "sentiment" / "samples"
    assert len((old / "sentiment.jsonl").read_text().splitlines()) == 12


def test_the_experiment_record_is_the_runs_own_verdicts_paths_health_and_time(path_run, tmp_path):
    output, _, _ = path_run
    script = Path(__file__).resolve().parents[1] / "scripts" / "experiment_record.py"
    done = subprocess.run(
        [sys.executable, str(script), str(output), "--wall-seconds", "61.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    record, summary = json.loads(done.stdout), json.loads((output / "summary.json").read_text())
    assert record["paths"] == summary["paths"] and record["baseline"] == "dpo"
    assert record["verdicts"]["tdpo"]["verdict"] == summary["verdicts"]["tdpo"]["verdict"]
    secondary = record["secondary"]["tdpo"]  # the same comparison read on the mean P(positive)
    assert secondary["metric"] == "p_positive,none" and secondary["kl"] == record["verdicts"]["tdpo"]["kl"]
    assert secondary["seeds"] == [0, 1] and secondary["verdict"] in ("better", "worse", "equivalent", "inconclusive")
    assert {"kl", "delta", "low", "high", "covers", "seeds", "margin", "verdict"} <= set(record["verdicts"]["tdpo"])
    assert set(record["health"]) == {"dpo-seed0", "dpo-seed1", "tdpo-seed0", "tdpo-seed1"}
    assert (record["wall_seconds"], record["wall_seconds_measured"]) == (61.5, True)
    summed = json.loads(
        subprocess.run(
            [sys.executable, str(script), str(output)], capture_output=True, text=True, timeout=120, check=True
        ).stdout
    )
    # A run's evaluation stage includes its checkpoints' (eval/NAME/steps/step-N): counted once.
    run_eval = summary["seconds"]["eval/tdpo-seed1"]
    assert run_eval >= sum(summary["seconds"][f"eval/tdpo-seed1/steps/step-{n}"] for n in (2, 4))
    top = [s for name, s in summary["seconds"].items() if "/steps/" not in name and s]
    assert summed["wall_seconds"] == pytest.approx(sum(top), abs=0.1)
    missing = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and missing.stderr.strip().endswith("a finished harness run output?)")
