"""``harness judge winrate`` end to end against stand-in judges: both orders asked, every judgment recorded,
the numbers following from the judgments, unparseable ones counted not guessed, a killed run resumed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from judge_stand_in import Answer, completion, stand_in_server

from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.answers import Answer as ModelAnswer
from tokenpo.evals.judges.winrate.endpoint import ChatEndpoint
from tokenpo.evals.judges.winrate.prompts import Prompt
from tokenpo.evals.judges.winrate.run import AnswerPair, judge_pairs_with_llm, served_identity
from tokenpo.evals.judges.winrate.stats import length_controlled_win_rate
from tokenpo.harness.cli import main

QUESTIONS = [f"question {i}: how do I do thing {i}?" for i in range(8)]
ANSWER = re.compile(r"### Answer ([AB]) \(begins\)\n(.*?)\n### Answer \1 \(ends\)", re.S)


def answers_in(body: dict[str, Any]) -> dict[str, str]:
    return dict(ANSWER.findall(body["messages"][-1]["content"]))


def always_first(body: dict[str, Any]) -> Answer:
    return Answer(body=completion("Both are fine, but the first reads better. [[A]]"))


def prefers_longer(body: dict[str, Any]) -> Answer:
    shown = answers_in(body)
    return Answer(body=completion("[[A]]" if len(shown["A"]) > len(shown["B"]) else "[[B]]"))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": q}) + "\n" for i, q in enumerate(QUESTIONS)))
    candidate, baseline = tmp_path / "candidate.jsonl", tmp_path / "baseline.jsonl"
    # The candidate's answer is the longer one on prompts 0-5, the shorter on 6 and 7.
    candidate.write_text(
        "".join(
            json.dumps({"prompt_id": f"q{i}", "answer": ("long answer " * 3 if i < 6 else "short") + f" #{i}"}) + "\n"
            for i in range(8)
        )
    )
    baseline.write_text(
        "".join(json.dumps({"prompt_id": f"q{i}", "answer": f"medium answer #{i}"}) + "\n" for i in range(8))
    )
    return {"prompts": prompts, "candidate": candidate, "baseline": baseline}


def winrate(files: dict[str, Path], url: str, out: Path, *extra: str) -> int:
    return main(
        [
            "judge",
            "winrate",
            "--prompts",
            str(files["prompts"]),
            "--candidate-answers",
            str(files["candidate"]),
            "--baseline-answers",
            str(files["baseline"]),
            "--judge-url",
            url,
            "--judge-model",
            "judge",
            "--bootstrap",
            "200",
            "--out",
            str(out),
            *extra,
        ]
    )


def read(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples" / "winrate.jsonl").read_text().splitlines()]
    journal = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    return results, samples, journal


def test_a_judge_that_always_picks_the_first_answer_gives_ties_and_shows_its_bias(files, tmp_path):
    with stand_in_server(respond=always_first) as (url, stand_in):
        assert winrate(files, url, tmp_path / "out") == 0
    results, samples, journal = read(tmp_path / "out")
    # Both orders of every pair were asked: the candidate's answer is A once and B once per question.
    asked = [answers_in(seen.body) for seen in stand_in.chat_requests()]
    assert len(asked) == 2 * len(QUESTIONS) == len(journal)
    for i in range(8):
        mine = [shown for shown in asked if shown["A"].endswith(f"#{i}")]
        assert len(mine) == 2 and mine[0]["A"] == mine[1]["B"] and mine[0]["B"] == mine[1]["A"]
    # Each order's verdict goes to whichever answer was first: one win, one loss, a tie (½) per pair.
    assert [row.get("win_rate") for row in samples] == [0.5] * 8
    harness = results["harness"]
    assert harness["win_rate_percent"]["value"] == 50.0 and results["results"]["winrate"]["win_rate,none"] == 0.5
    assert harness["position_bias"]["first_share"] == 1.0 and harness["position_bias"]["flips"] == 8
    assert harness["judged_pairs"] == 8 and harness["unjudged_pairs"] == 0


def test_the_rates_follow_from_the_judgments_and_length_control_discounts_length(files, tmp_path):
    with stand_in_server(respond=prefers_longer) as (url, _):
        assert winrate(files, url, tmp_path / "out") == 0
    results, samples, _ = read(tmp_path / "out")
    # A consistent judge: the longer answer wins in both orders, so the candidate wins 6 of 8 pairs.
    assert [row.get("win_rate") for row in samples] == [1.0] * 6 + [0.0] * 2
    harness = results["harness"]
    assert harness["win_rate_percent"]["value"] == pytest.approx(75.0)
    assert {(row["candidate_first_verdict"], row["baseline_first_verdict"]) for row in samples[:6]} == {("A", "B")}
    # Every win is explained by length (separable data: the penalised fit), so length control takes the
    # candidate's lead away; the rate is the GLM's on the samples' own outcomes and lengths.
    controlled = harness["lc_win_rate_percent"]["value"]
    refitted = length_controlled_win_rate(
        [row.get("win_rate") for row in samples],
        [row["candidate_length"] for row in samples],
        [row["baseline_length"] for row in samples],
    )
    assert controlled == pytest.approx(refitted, abs=1e-9) and controlled < 75.0
    assert harness["length_control"]["penalty"] > 0
    assert harness["length_control"]["unit"] == "characters"
    assert harness["position_bias"]["flips"] == 0
    low, high = harness["win_rate_percent"]["low"], harness["win_rate_percent"]["high"]
    assert low <= 75.0 <= high and harness["interval"]["covers"] == "prompts"


def test_unparseable_and_failed_judgments_are_counted_never_guessed(files, tmp_path):
    def garbage_on_two(body: dict[str, Any]) -> Answer:
        shown = answers_in(body)
        if any(shown[side].endswith(("#6", "#7")) for side in "AB"):
            return Answer(body=completion("I cannot decide; both are good."))  # no verdict token
        return prefers_longer(body)

    with stand_in_server(respond=garbage_on_two) as (url, _):
        assert winrate(files, url, tmp_path / "out") == 0
    results, samples, journal = read(tmp_path / "out")
    harness = results["harness"]
    assert harness["unjudged_pairs"] == 2 and sorted(harness["unjudged_prompt_ids"]) == ["q6", "q7"]
    assert [("win_rate" in row, row["judged"]) for row in samples[6:]] == [(False, False)] * 2
    assert harness["win_rate_percent"]["value"] == 100.0  # 6 judged pairs, all won: the two unjudged not ties
    assert sum(1 for row in journal if row["verdict"] is None) == 4


def test_a_second_run_asks_the_judge_nothing_and_writes_the_same_results(files, tmp_path):
    with stand_in_server(respond=prefers_longer) as (url, stand_in):
        assert winrate(files, url, tmp_path / "out") == 0
        first = read(tmp_path / "out")
        assert winrate(files, url, tmp_path / "out") == 0
        assert len(stand_in.chat_requests()) == 16  # none more on the second run
    second = read(tmp_path / "out")
    assert second[1] == first[1] and second[0]["results"] == first[0]["results"]


def test_a_prompt_without_a_baseline_answer_is_refused_in_one_line(files, tmp_path, capsys):
    lines = files["baseline"].read_text().splitlines()
    files["baseline"].write_text("\n".join(lines[:-1]) + "\n")
    with stand_in_server(respond=always_first) as (url, stand_in):
        assert winrate(files, url, tmp_path / "out") == 2
        assert stand_in.chat_requests() == []
    error = capsys.readouterr().err.strip()
    assert error == "error: baseline answers: prompt_id: no answer to 1 of 8 prompts: q7"


def test_a_judge_served_here_resumes_at_another_port_but_a_hosted_one_at_another_url_is_another_judge(tmp_path):
    pairs = [AnswerPair(Prompt(f"q{i}", q), ModelAnswer(f"q{i}", "long one"), ModelAnswer(f"q{i}", "short"))
             for i, q in enumerate(QUESTIONS[:3])]  # fmt: skip
    journal = tmp_path / "judgments.jsonl"
    with stand_in_server(respond=prefers_longer) as (url, first):
        endpoint = ChatEndpoint(url, "judge", retry_wait=0.0)
        judge_pairs_with_llm(pairs, endpoint, journal, served_identity(endpoint, "/models/judge"))
    with stand_in_server(respond=prefers_longer) as (url, second):  # the same model, served at a new port
        endpoint = ChatEndpoint(url, "judge", retry_wait=0.0)
        outcomes, _, _ = judge_pairs_with_llm(pairs, endpoint, journal, served_identity(endpoint, "/models/judge"))
        assert (
            len(first.chat_requests()) == 6
            and second.chat_requests() == []
            and outcomes == dict.fromkeys(("q0", "q1", "q2"), 1.0)
        )
        with pytest.raises(EvalError, match=r"judgments\.jsonl"):  # a hosted judge is its URL: another judge
            judge_pairs_with_llm(pairs, endpoint, journal)
