"""``eval.winrate`` in ``harness run``: answers once per final model, each model but the baseline's judged
against the baseline of its seed, in the leaderboard; a new judge asks again without new answers, and
setting the win rate on a finished run evaluates no model again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from judge_stand_in import Answer, completion, stand_in_server

from tokenpo.core.config import load_config
from tokenpo.harness.pipeline.config import RunConfig
from tokenpo.harness.pipeline.run import Pipeline

REPO = Path(__file__).resolve().parents[1]

QUESTIONS = [f"question {i}: what is {i} plus {i}?" for i in range(12)]


def first_answer_wins(body: dict) -> Answer:
    return Answer(body=completion("The first one. [[A]]"))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": q}) + "\n" for i, q in enumerate(QUESTIONS)))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": f"Say {i}.", "chosen": f" {i}, gladly.", "rejected": " No."}) + "\n" for i in range(8)
        )
    )
    config = {
        "name": "tiny-winrate",
        "output_dir": str(tmp_path / "run"),
        "model": "tiny-llama",
        "data": {"path": str(pairs)},
        "methods": [
            {"name": "dpo", "method": {"name": "dpo", "beta": 0.1}},
            {"name": "sparsepo", "method": {"name": "sparsepo", "mask": "activation"}},
        ],
        "training": {
            "learning_rate": 1.0e-3,
            "per_device_batch_size": 2,
            "max_steps": 2,
            "max_length": 32,
            "max_prompt_length": 16,
        },
        "eval": {"sentiment": {"samples_per_prompt": 1, "max_new_tokens": 4}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(config_file: Path, *overrides: str):
    return Pipeline(load_config(RunConfig, config_file, overrides), str(config_file)).run()


def test_the_pipeline_judges_every_model_against_the_baseline_of_its_seed(config_file, tmp_path):
    prompts = str(tmp_path / "prompts.jsonl")
    first = run(config_file)
    assert not any(name.startswith(("answers/", "winrate/")) for name in first.timings)
    with stand_in_server(respond=first_answer_wins) as (url, judge):
        block = {"prompts": prompts, "max_new_tokens": 6, "bootstrap": 50,
                 "judge": {"url": url, "model": "judge", "max_tokens": 16}}  # fmt: skip
        second = run(config_file, "eval.winrate=" + json.dumps(block))
        # Setting the win rate evaluates no model again: only its own stages run.
        assert sorted(second.timings) == [
            "answers/base", "answers/dpo-seed0", "answers/sparsepo-seed0", "winrate/base", "winrate/sparsepo-seed0"
        ]  # fmt: skip
        # Both orders of every prompt, for the two judged models; the baseline is not judged against itself.
        assert len(judge.chat_requests()) == 2 * len(QUESTIONS) * 2
        out = Path(second.output)
        result = json.loads((out / "winrate" / "sparsepo-seed0" / "results.json").read_text())
        harness = result["harness"]
        assert harness["method"] == "sparsepo" and harness["seed"] == 0 and harness["final"] is True
        assert harness["candidate"]["label"] == "sparsepo-seed0" and harness["baseline"]["label"] == "dpo-seed0"
        assert harness["candidate"]["generation"]["max_new_tokens"] == 6
        # A judge that always picks the first answer wins one order and loses the other: every pair ties.
        assert result["results"]["winrate"]["win_rate,none"] == 0.5
        assert harness["position_bias"]["first_share"] == 1.0
        answers = (out / "answers" / "dpo-seed0" / "answers.jsonl").read_text().splitlines()
        assert [json.loads(line)["prompt_id"] for line in answers] == [f"q{i}" for i in range(12)]
        # The baseline is the win rate's reference, not a model missing a score.
        baseline_row = next(line for line in second.leaderboard.splitlines() if line.startswith("| dpo (baseline)"))
        assert baseline_row.endswith("| reference | reference |")
        assert "Win rate: missing" not in second.leaderboard
        assert (
            "win rate of sparsepo-seed0 against dpo-seed0: 12 of 12 pairs judged in both orders; the judge chose "
            "the first answer in 100% of its decisive judgments"
        ) in second.notes
        summary = json.loads((out / "summary.json").read_text())["winrate"]
        assert sorted(summary) == ["base", "sparsepo-seed0"] and summary["base"]["judged_pairs"] == 12
        card = (out / "train" / "sparsepo-seed0" / "final" / "README.md").read_text()
        assert "| Win rate | winrate | win_rate,none | 12 | 50.00 |" in card

        # Another judge setting judges again from the same answers; the same settings ask nothing.
        block["judge"]["max_tokens"] = 32
        third = run(config_file, "eval.winrate=" + json.dumps(block))
        assert sorted(third.timings) == ["winrate/base", "winrate/sparsepo-seed0"]
        asked = len(judge.chat_requests())
        fourth = run(config_file, "eval.winrate=" + json.dumps(block))
        assert fourth.timings == {} and len(judge.chat_requests()) == asked


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"judge": {"url": "http://x/v1", "model": "j", "serve": "tiny-llama"}},
         "eval.winrate.judge.url: give exactly one of url, serve and reward_model, got ['url', 'serve']"),
        ({"judge": {"url": "http://x/v1"}}, "eval.winrate.judge.model: name the judge model served at url"),
        ({"judge": {"serve": "tiny-llama", "key_env": "KEY"}},
         "eval.winrate.judge.key_env: applies only to a judge at a url"),
        ({"judge": {"serve": "tiny-llama"}, "limit": 0}, "eval.winrate.limit: must be positive or null, got 0"),
        ({"prompts": "absent.jsonl", "judge": {"serve": "tiny-llama"}},
         "eval.winrate.prompts: no such file: absent.jsonl"),
    ],
)  # fmt: skip
def test_a_bad_winrate_setting_is_refused_in_one_line_naming_the_key(config_file, block, expected, capsys):
    from tokenpo.harness.cli import main

    assert main(["run", str(config_file), "eval.winrate=" + json.dumps(block)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.endswith(f"{expected}\n"), error


def test_hh_prompts_without_the_benchmark_folder_skip_the_win_rate_with_a_note(config_file, tmp_path):
    block = {"judge": {"serve": "tiny-llama"}}
    config = load_config(RunConfig, config_file, ["eval.winrate=" + json.dumps(block)])
    pipeline = Pipeline(config, str(config_file))
    assert pipeline.winrate is None
    assert not [stage for stage in pipeline.plan() if stage.kind in ("answers", "winrate")]
    assert pipeline.result.notes == [
        "win rate skipped: its prompts (hh-helpful) are read from eval.data_dir, which is not set"
    ]


def test_the_documented_quickstart_win_rate_command_adds_only_the_win_rate_stages(
    smollm2_path, benchmarks_dir, monkeypatch
):
    # docs/winrate.md's command, as a newcomer pastes it after the quickstart (not run here: 25 minutes).
    import re
    import shlex

    text = (REPO / "docs" / "winrate.md").read_text()
    command = next(line for line in re.findall(r"^harness run .*$", text, re.M) if "eval.winrate=" in line)
    words = shlex.split(command)
    assert words[:3] == ["harness", "run", "configs/quickstart.yaml"]
    monkeypatch.chdir(REPO)  # the quickstart's paths (../shared/benchmarks) are relative to the repository
    monkeypatch.setenv("HARNESS_BENCHMARKS", str(benchmarks_dir))
    pipeline = Pipeline(load_config(RunConfig, words[2], words[3:]), words[2])
    quickstart = Pipeline(load_config(RunConfig, words[2]), words[2])
    added = [stage.name for stage in pipeline.plan() if stage.kind in ("answers", "winrate")]
    assert added == [
        "answers/base", "answers/dpo-seed0", "answers/sparsepo-seed0", "answers/tidpo-seed0",
        "winrate/base", "winrate/sparsepo-seed0", "winrate/tidpo-seed0",
    ]  # fmt: skip
    # Every stage the quickstart has keeps its key: its trained and evaluated models are reused.
    for stage in quickstart.plan():
        if stage.kind != "report":
            assert pipeline.stage_for(stage.name).key == quickstart.stage_for(stage.name).key, stage.name
    assert pipeline.winrate.limit == 16 and pipeline.winrate.judge.serve == "smollm2-135m-instruct"
