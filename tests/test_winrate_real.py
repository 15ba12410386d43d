"""The win-rate judge end to end on the real model: a DPO model trained here on HH pairs against the
built-in model, 16 Anthropic-HH helpful-base prompts, the built-in model serving as the judge through the
harness's own chat server. It is a weak judge (135M parameters): the test checks the protocol, not its
taste: every judgment recorded, both orders asked of every pair, the numbers following from the judgments.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenpo.core.config import load_config
from tokenpo.evals.judges.winrate.protocol import Judgment, pair_outcome
from tokenpo.harness.cli import main
from tokenpo.harness.pipeline.config import RunConfig, method_training
from tokenpo.trainers import TrainConfig, train

pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
PROMPTS = 16


@pytest.fixture(scope="module")
def dpo_model(smollm2_path, benchmarks_dir, tmp_path_factory) -> str:
    """The quickstart's DPO, 8 steps on 8 HH pairs: a model that differs from the base, made in seconds."""
    from tokenpo.trainers.data import load_preferences

    pairs = load_preferences(
        str(benchmarks_dir / "hh_rlhf" / "helpful-base_test.jsonl.gz"), fmt="hh-rlhf-chat", skip_invalid=True
    ).examples[:8]
    config = load_config(RunConfig, QUICKSTART)
    index = [run.name for run in config.methods].index("dpo")
    quickstart = method_training(config, index, str(QUICKSTART))
    training = type(quickstart)(**{**vars(quickstart), "max_steps": 8, "max_length": 128, "save_every": 0})
    result = train(
        TrainConfig(config.methods[index].method, training), smollm2_path, pairs, tmp_path_factory.mktemp("dpo")
    )
    return str(result.final_dir)


def test_the_built_in_model_judges_dpo_against_the_base_through_a_real_local_server(
    dpo_model, smollm2_path, benchmarks_dir, tmp_path
):
    out = tmp_path / "winrate"
    # The judge is served from the built-in model's folder by the hf backend's chat server (--judge-serve).
    argv = ["judge", "winrate", "--prompts", "hh-helpful", "--limit", str(PROMPTS), "--from", str(benchmarks_dir)]
    argv += ["--candidate", dpo_model, "--baseline", smollm2_path, "--max-new-tokens", "64"]
    argv += ["--judge-serve", smollm2_path, "--judge-max-tokens", "64", "--bootstrap", "200", "--out", str(out)]
    assert main(argv) == 0

    journal = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    samples = [json.loads(line) for line in (out / "samples" / "winrate.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    harness = results["harness"]
    # Every pair asked in both orders, each judgment recorded with the judge's reply.
    assert len(samples) == PROMPTS and len(journal) == 2 * PROMPTS
    assert {(row["prompt_id"], row["order"]) for row in journal} == {
        (row["prompt_key"], order) for row in samples for order in ("candidate_first", "baseline_first")
    }
    assert all(row["reply"] is not None or row["error"] for row in journal)
    assert "base_url" not in results["configs"]["winrate"]  # a served judge is its folder, not its port
    assert (
        results["configs"]["winrate"]["kind"] == "llm"
        and Path(results["configs"]["winrate"]["served"]).resolve() == Path(smollm2_path).resolve()
    )
    # The numbers follow from the judgments: each pair's outcome from its two verdicts, the rate their mean.
    judged = {}
    for row in samples:
        orders = {j["order"]: j for j in journal if j["prompt_id"] == row["prompt_key"]}
        first, second = (
            Judgment(row["prompt_key"], order, orders[order]["reply"], orders[order]["verdict"], orders[order]["error"])
            for order in ("candidate_first", "baseline_first")
        )
        assert row.get("win_rate") == pair_outcome(first, second) and row["judged"] == ("win_rate" in row)
        if row["judged"]:
            judged[row["prompt_key"]] = row["win_rate"]
    assert harness["judged_pairs"] == len(judged) and harness["unjudged_pairs"] == PROMPTS - len(judged)
    if judged:
        expected = 100 * sum(judged.values()) / len(judged)
        assert harness["win_rate_percent"]["value"] == pytest.approx(expected)
    else:  # the weak judge gave no verdict in both orders of any pair: reported, never scored as ties
        assert harness["win_rate_percent"] is None and results["results"]["winrate"] == {"alias": "winrate"}
    bias = harness["position_bias"]
    assert bias["judgments"] == 2 * PROMPTS and bias["parsed"] == sum(row["verdict"] is not None for row in journal)
