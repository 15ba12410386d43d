"""``harness leaderboard`` on a ``harness run`` output: the run folder or its eval/ finds every result
folder inside, as the run's own leaderboard does; a path that is not a result says what it is."""

from __future__ import annotations

import pytest
from leaderboard_helpers import write_result

from tokenpo.harness.cli import main
from tokenpo.leaderboards.discover import result_files
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.results import load_results


def _scores(right: int, n: int = 40) -> list[int]:
    return [1] * right + [0] * (n - right)


@pytest.fixture
def run_output(tmp_path):
    """A run's layout: eval/LABEL/{sentiment,benchmarks}, checkpoints in eval/LABEL/steps/step-N/, a stage's
    bookkeeping files, a superseded folder, a training run and its model folder."""
    out = tmp_path / "runs" / "quick"
    made = []
    for label, method, right in (("base", "base", 10), ("dpo-seed0", "dpo", 20), ("sparsepo-seed0", "sparsepo", 24)):
        evaluated = out / "eval" / label
        harness = {"method_family": method, "step": 0 if method == "base" else 26, "final": True}
        made.append(
            write_result(evaluated / "benchmarks", {"mc": {"acc,none": _scores(right)}}, method, harness=harness)
        )
        (evaluated / "stage-key").write_text("abc\n")
        (evaluated / "stage.json").write_text('{"key": "abc"}\n')
        if method != "base":
            for step in (8, 16):  # 16 sorts before 8 as text
                made.append(
                    write_result(
                        evaluated / "steps" / f"step-{step}" / "benchmarks",
                        {"mc": {"acc,none": _scores(right - 26 + step)}},
                        method,
                        harness={**harness, "step": step, "final": False},
                    )
                )
    write_result(out / "eval" / "dpo-seed0.superseded-1" / "benchmarks", {"mc": {"acc,none": _scores(1)}}, "dpo")
    run = out / "train" / "dpo-seed0"
    (run / "final").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "final" / "config.json").write_text("{}")
    (run / "final" / "model.safetensors").write_bytes(b"")
    return out, made


def test_a_run_folder_and_its_eval_give_every_result_folder_in_the_pipelines_order(run_output):
    out, made = run_output
    in_order = [folder / "results.json" for folder in made]
    assert result_files(out) == in_order  # steps by number (8 before 16); nothing superseded
    assert result_files(out / "eval") == in_order
    assert [r.checkpoint_step for r in load_results(out / "eval" / "dpo-seed0")] == [None, 8, 16]


def test_the_leaderboard_of_a_run_folder_equals_the_one_of_its_result_folders(run_output, capsys, tmp_path):
    out, made = run_output
    registry = tmp_path / "catalog.yaml"
    registry.write_text(
        "benchmarks:\n  mc:\n    label: MC\n    tasks: [mc]\n    metrics: ['acc,none']\n    random: 0.25\n"
    )
    assert main(["leaderboard", str(out), "--baseline", "dpo", "--catalog", str(registry)]) == 0
    of_run = capsys.readouterr().out
    assert main(["leaderboard", *map(str, made), "--baseline", "dpo", "--catalog", str(registry)]) == 0
    assert of_run == capsys.readouterr().out
    assert "| sparsepo | tiny-llama |" in of_run and "| base | tiny-llama |" in of_run


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (
            "eval/base/stage-key",
            "a pipeline stage's fingerprint (give the run folder or its eval/ instead), not a result",
        ),
        ("eval/base/stage.json", "a pipeline stage's marker (give the run folder or its eval/ instead), not a result"),
        (
            "train/dpo-seed0",
            "a training run folder (its models' evaluations are in the run's eval/ folder), not a result",
        ),
        ("train/dpo-seed0/final", "a model folder (evaluate it with `harness eval --model FOLDER`), not a result"),
        ("train", "a folder with no results.json or lm-eval results_*.json in it or below, not a result"),
    ],
)
def test_a_path_that_is_not_a_result_says_what_it_is(run_output, capsys, path, says):
    out, _ = run_output
    with pytest.raises(ResultsError, match="^" + str(out / path).replace(".", r"\.") + ": "):
        load_results(out / path)
    assert main(["leaderboard", str(out / path)]) == 2
    assert capsys.readouterr().err == f"error: {out / path}: {says}\n"


def test_training_runs_are_found_in_a_run_output_or_its_train_folder(run_output):
    from tokenpo.leaderboards.runs import load_runs

    out, _ = run_output
    (out / "train" / "dpo-seed0" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.69}\n')
    (out / "train" / "dpo-seed0.superseded-1").mkdir()
    (out / "train" / "dpo-seed0.superseded-1" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    for path in (out, out / "train", out / "train" / "dpo-seed0"):
        assert [run.name for run in load_runs([path])] == ["dpo-seed0"]
    with pytest.raises(ResultsError, match=r"eval: neither metrics\.jsonl nor token_scores\.jsonl inside"):
        load_runs([out / "eval"])
