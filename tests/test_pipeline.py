"""``harness run``: the train-then-evaluate pipeline on the tiny model, end to end, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tokenpo.harness.cli import main
from tokenpo.harness.pipeline.config import SentimentPairs
from tokenpo.harness.pipeline.sentiment import Continuation, build_pairs, load_prompts, prompt_sets
from tokenpo.harness.pipeline.stages import Stage

# One thread: the killed-and-resumed runs must sum floats in the same order as the straight one.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def tiny_config(output: Path, benchmarks: Path | None) -> dict:
    return {
        "name": "tiny",
        "output_dir": str(output),
        "model": "tiny-llama",
        "data": {
            "sentiment": {
                "train_prompts": 24,
                "eval_prompts": 8,
                "completions_per_prompt": 3,
                "max_new_tokens": 8,
                "min_margin": 0.0,
            }
        },
        "methods": [
            {"name": "dpo", "method": {"name": "dpo", "beta": 0.1}},
            {"name": "sparsepo", "method": {"name": "sparsepo", "mask": "learned"}, "training": {"max_steps": 12}},
        ],
        "training": {
            "learning_rate": 1.0e-3,
            "per_device_batch_size": 2,
            "max_steps": 24,
            "save_every": 3,
            "max_length": 48,
            "max_prompt_length": 24,
        },
        "eval": {
            "sentiment": {"samples_per_prompt": 2, "max_new_tokens": 8},
            "suite": "smoke" if benchmarks else None,
            "limit": 2,
            "data_dir": str(benchmarks) if benchmarks else None,
        },
    }


def write_config(folder: Path, config: dict) -> Path:
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def harness_run(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tokenpo", "run", str(config), "--no-progress"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return out


def kill_when(process: subprocess.Popen, ready, what: str) -> None:
    deadline = time.time() + 300
    while not ready():
        assert process.poll() is None, f"the run ended before {what}: {process.stderr.read()[-2000:]}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def outcome(output: Path) -> dict:
    """Everything a run produced that must not depend on interruptions: metrics and scores."""
    found = {}
    for metrics in sorted(output.glob("train/*/metrics.jsonl")):
        found[str(metrics.relative_to(output))] = metrics.read_text()
    for results in sorted(output.glob("eval/*/*/results.json")):
        found[str(results.relative_to(output))] = json.loads(results.read_text())["results"]
    found["pairs"] = (output / "data" / "pairs.jsonl").read_text()
    return found


@pytest.fixture(scope="module")
def straight_run(benchmarks_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("straight")
    config = write_config(folder, tiny_config(folder / "out", benchmarks_dir))
    started = time.monotonic()
    stdout = finish(harness_run(config))
    return folder / "out", config, stdout, time.monotonic() - started


def test_the_pipelines_few_shot_examples_are_plain_lm_evals(straight_run, tmp_path):
    """GSM8K's five examples in a pipeline run are those lm-eval picks with its default few-shot seed (1234)."""
    from tokenpo.evals.tasks.configs import write_task_configs

    output = straight_run[0]
    configs = write_task_configs(tmp_path, output / "benchmark-data" / "mirror")
    task = configs.task_manager().load(["gsm8k"])["tasks"]["gsm8k"]  # as `lm_eval --include_path` loads it
    task.set_fewshot_seed(1234)  # lm-eval's default fewshot_random_seed; the run's training seed is 42
    expected = task.fewshot_context(task.eval_docs[0], num_fewshot=task.config.num_fewshot)
    for run in ("base", "dpo-seed0"):
        row = json.loads((output / "eval" / run / "benchmarks" / "samples" / "gsm8k.jsonl").read_text().splitlines()[0])
        assert row["doc_id"] == 0 and row["arguments"][0][0] == expected
    assert expected.count("Question:") == 6


def test_the_pipeline_trains_evaluates_and_reports_end_to_end(straight_run):
    output, _, stdout, _ = straight_run
    for stage in (
        "data",
        "benchmark-data",
        "train/dpo-seed0",
        "train/sparsepo-seed0",
        "eval/base",
        "eval/dpo-seed0",
        "eval/sparsepo-seed0",
    ):
        assert (output / stage / "stage.json").is_file(), stage
    pairs = [json.loads(line) for line in (output / "data" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["p_positive_chosen"] > p["p_positive_rejected"] for p in pairs)
    assert len((output / "train" / "sparsepo-seed0" / "metrics.jsonl").read_text().splitlines()) == 12
    assert len((output / "train" / "dpo-seed0" / "metrics.jsonl").read_text().splitlines()) == 24
    sentiment = json.loads((output / "eval" / "dpo-seed0" / "sentiment" / "results.json").read_text())
    assert sentiment["harness"]["method"] == "dpo" and sentiment["harness"]["base_model"] == "tiny-llama"
    assert sentiment["results"]["sentiment"]["kl_to_ref,none"] > 0  # the trained policy moved
    base = json.loads((output / "eval" / "base" / "sentiment" / "results.json").read_text())
    assert base["results"]["sentiment"]["kl_to_ref,none"] == 0.0  # the base against itself
    benchmarks = json.loads((output / "eval" / "dpo-seed0" / "benchmarks" / "results.json").read_text())
    assert {"gsm8k", "ifeval", "mmlu", "humaneval"} <= set(benchmarks["results"])
    # benchmarks evaluate with lm-eval's default seeds (its few-shot examples), not the training seed
    config = benchmarks["config"]
    assert (config["random_seed"], config["numpy_seed"], config["torch_seed"], config["fewshot_seed"]) == (
        0,
        1234,
        1234,
        1234,
    )
    assert (sentiment["harness"]["method_family"], sentiment["harness"]["beta"]) == ("dpo", 0.1)
    assert sentiment["harness"]["training_health"] == []
    assert "training_health" not in base["harness"] and base["harness"]["method_family"] == "base"
    # The official head initialisation starts the tiny model's masks near zero: flagged, and marked.
    flagged = json.loads((output / "eval" / "sparsepo-seed0" / "sentiment" / "results.json").read_text())
    assert [flag["metric"] for flag in flagged["harness"]["training_health"]] == ["mask/u_chosen_mean"]
    # The leaderboard against DPO is printed and written; the report is one self-contained file.
    assert "## Leaderboard (baseline: dpo)" in stdout and "| ⚠ sparsepo | tiny-llama |" in stdout
    summary = json.loads((output / "summary.json").read_text())
    assert [(p["family"], p["beta"]) for p in summary["frontier"]] == [
        ("base", None),
        ("dpo", 0.1),
        ("sparsepo-learned-common", 0.1),
    ]
    assert {r["run"]: r["health"] for r in summary["training"]} == {"dpo-seed0": "ok", "sparsepo-seed0": "flagged"}
    assert (output / "frontier.svg").read_text().startswith("<svg")
    assert "| base | tiny-llama |" in stdout
    assert (output / "leaderboard.md").read_text() in stdout
    html = (output / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_running_again_skips_every_finished_stage(straight_run):
    output, config, stdout, _ = straight_run
    markers = {p: p.stat().st_mtime_ns for p in output.glob("**/stage.json")}
    assert finish(harness_run(config)) == stdout
    assert {p: p.stat().st_mtime_ns for p in output.glob("**/stage.json")} == markers


def test_a_run_killed_mid_training_resumes_to_the_same_results(straight_run, benchmarks_dir, tmp_path):
    output = tmp_path / "out"
    config = write_config(tmp_path, tiny_config(output, benchmarks_dir))
    run = output / "train" / "dpo-seed0"
    kill_when(harness_run(config), lambda: (run / "checkpoints" / "step-6").is_dir(), "a DPO checkpoint")
    assert not (run / "DONE").exists(), "the kill came too late to test resuming mid-training"
    finish(harness_run(config))
    summary = json.loads((run / "stage.json").read_text())["summary"]
    assert summary["resumed_from"] >= 6
    assert outcome(output) == outcome(straight_run[0])


def test_a_run_killed_mid_evaluation_resumes_to_the_same_results(straight_run, benchmarks_dir, tmp_path):
    output = tmp_path / "out"
    config = write_config(tmp_path, tiny_config(output, benchmarks_dir))
    journal = output / "eval" / "dpo-seed0" / "benchmarks" / ".cache"

    def journal_started() -> bool:
        return any(path.stat().st_size > 0 for path in journal.glob("requests-*.jsonl"))

    kill_when(harness_run(config), journal_started, "the DPO model's benchmark evaluation")
    assert not (output / "eval" / "dpo-seed0" / "stage.json").exists()
    finish(harness_run(config))
    assert outcome(output) == outcome(straight_run[0])


def _config_error(tmp_path, capsys, change) -> str:
    config = tiny_config(tmp_path / "out", None)
    change(config)
    assert main(["run", str(write_config(tmp_path, config))]) == 2
    return capsys.readouterr().err


def test_config_errors_exit_2_with_one_line_naming_the_key(tmp_path, capsys):
    path = tmp_path / "run.yaml"

    def unknown_method(c):
        c["methods"][0]["method"]["name"] = "simpo"

    def bad_beta(c):
        c["methods"][1]["method"]["beta"] = -1

    def bad_override(c):
        c["methods"][1]["training"]["learning_rate"] = "fast"

    def missing_data(c):
        c["data"] = {"path": str(tmp_path / "absent.jsonl")}

    def unknown_key(c):
        c["eval"]["judges"] = ["rouge"]

    assert _config_error(tmp_path, capsys, unknown_method) == (
        f"error: {path}: methods[0].method.name: expected one of dpo, tdpo, sparsepo, tidpo; got 'simpo'\n"
    )
    assert _config_error(tmp_path, capsys, bad_beta) == (
        f"error: {path}: methods[1].method.beta: must be positive, got -1.0\n"
    )
    assert _config_error(tmp_path, capsys, bad_override) == (
        f"error: {path}: methods[1].training.learning_rate: expected a number, got 'fast'\n"
    )
    assert _config_error(tmp_path, capsys, missing_data) == (
        f"error: {path}: data.path: no such file: {tmp_path / 'absent.jsonl'}\n"
    )
    assert _config_error(tmp_path, capsys, unknown_key).startswith(
        f"error: {path}: eval.judges: unknown key; expected one of: "
    )


def test_pairs_take_the_most_and_least_positive_continuation():
    texts = [["good", "bad", "meh"], ["x", "y", "z"], ["fine", "fine", "ok"]]
    pairs, stats = build_pairs(
        ["A", "B", "C"],
        [[Continuation(text, truncated=False) for text in group] for group in texts],
        [[0.9, 0.1, 0.5], [0.5, 0.52, 0.5], [0.7, 0.7, 0.3]],
        min_margin=0.05,
    )
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [("A", "good", "bad"), ("C", "fine", "ok")]
    assert (stats.pairs, stats.below_margin) == (2, 1) and stats.mean_margin == pytest.approx((0.8 + 0.4) / 2)


def test_prompts_builtin_and_from_a_file(tmp_path):
    assert len(load_prompts("builtin")) == 80
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"First opening\n\n  Second opening \n")
    assert load_prompts(str(path)) == ["First opening", "Second opening"]
    path.write_bytes(b"ok\nbad \xff byte\n")
    with pytest.raises(Exception, match=r"prompts.txt:2: prompt: undecodable bytes"):
        load_prompts(str(path))


def test_review_csv_openings_train_on_the_training_reviews_and_hold_out_the_valid_ones(tmp_path):
    path = tmp_path / "imdb.csv"
    path.write_text(
        "label,text,is_valid\n"
        'negative,"One two three four five six",False\n'
        'positive,"Held<br /><br />out review text",True\n'
        'positive,"Seven eight nine ten",False\n',
        encoding="utf-8",
    )
    settings = SentimentPairs(prompts=str(path), prompt_words=3, train_prompts=2, eval_prompts=1)
    assert prompt_sets(settings) == (["One two three", "Seven eight nine"], ["Held out review"])
    with pytest.raises(Exception, match=r"imdb.csv: data.sentiment.eval_prompts: 2 wanted, the file has 1"):
        prompt_sets(SentimentPairs(prompts=str(path), train_prompts=2, eval_prompts=2))
    path.write_text('label,text,is_valid\npositive,"fine",False\nnegative,"  ",False\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"imdb.csv:3: text: empty review"):
        prompt_sets(settings)
    path.write_text('label,text,is_valid\npositive,"fine",maybe\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"imdb.csv:2: is_valid: expected True or False, got 'maybe'"):
        prompt_sets(settings)
    path.write_text("label,review\npositive,fine\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"imdb.csv:1: text: the review CSV needs a 'text' column"):
        prompt_sets(settings)


def test_a_stage_with_other_inputs_is_moved_aside_never_deleted(tmp_path):
    first = Stage("train/dpo", tmp_path / "dpo", "key-1")
    first.prepare()
    (first.folder / "metrics.jsonl").write_text("partial\n")
    first.prepare()  # same inputs: partial work is kept for the resume
    assert (first.folder / "metrics.jsonl").read_text() == "partial\n"
    first.finish({"steps": 3})
    assert first.done() and first.summary() == {"steps": 3}
    second = Stage("train/dpo", tmp_path / "dpo", "key-2")
    assert not second.done()
    second.prepare()
    assert (tmp_path / "dpo.superseded-1" / "metrics.jsonl").read_text() == "partial\n"
    assert not (second.folder / "metrics.jsonl").exists()
