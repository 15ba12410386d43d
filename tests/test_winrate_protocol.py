"""The pairwise judge protocol (prompt, strict verdicts, both orders, position bias) and the resumable
judgment journal."""

from __future__ import annotations

import json
import re

import pytest

from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate import (
    TEMPLATE_VERSION,
    Judgment,
    JudgmentJournal,
    judge_key,
    judge_messages,
    pair_outcome,
    pair_outcomes,
    parse_verdict,
    position_bias,
)


def test_judge_messages_hold_the_instructions_question_and_both_answers_in_order():
    messages = judge_messages("What is 2+2?", "It is {answer_b} 4.", "Five.")
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    for phrase in ("helpfulness", "accuracy", "harmlessness", "order", "Length", "[[A]]", "[[B]]", "[[C]]"):
        assert phrase in system
    # Braces in an answer are text, never template fields.
    assert user.index("What is 2+2?") < user.index("It is {answer_b} 4.") < user.index("Five.")
    assert TEMPLATE_VERSION


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("A is more accurate. [[A]]", "A"),
        ("[[B]]", "B"),
        ("Equally good.\n[[C]]", "tie"),
        ("My verdict: [[B]]. Final: [[B]]", "B"),  # the same token restated
        ("[[A]] ... on reflection [[B]]", None),  # two different tokens: contradicted
        ("Answer A is better.", None),  # prose is never read as a verdict
        ("[[a]]", None),
        ("[A]", None),
        ("[[ A ]]", None),
        ("", None),
    ],
)
def test_parse_verdict_is_strict(reply, verdict):
    assert parse_verdict(reply) == verdict


def both(prompt_id: str, first: str | None, second: str | None) -> tuple[Judgment, Judgment]:
    """The candidate_first and baseline_first judgments with these verdicts (None: unparseable)."""
    reply = lambda v: {"A": "[[A]]", "B": "[[B]]", "tie": "[[C]]", None: "no verdict"}[v]  # noqa: E731
    return (
        Judgment.of_reply(prompt_id, "candidate_first", reply(first)),
        Judgment.of_reply(prompt_id, "baseline_first", reply(second)),
    )


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("A", "B", 1.0),  # candidate chosen in both positions: a win
        ("B", "A", 0.0),  # baseline chosen in both: a loss
        ("A", "A", 0.5),  # the judge chose position A both times: a flip, a tie
        ("B", "B", 0.5),
        ("tie", "tie", 0.5),
        ("A", "tie", 0.75),
        ("tie", "A", 0.25),
        ("B", "tie", 0.25),
        ("tie", "B", 0.75),
        ("A", None, None),  # one order unparseable: unjudged, never guessed from the other
        (None, "B", None),
    ],
)
def test_pair_outcome_averages_the_candidates_score_over_both_orders(first, second, outcome):
    assert pair_outcome(*both("p", first, second)) == outcome


def test_a_failed_order_leaves_the_pair_unjudged_and_mismatches_are_refused():
    candidate_first, _ = both("p", "A", "B")
    assert pair_outcome(candidate_first, Judgment.failed("p", "baseline_first", "HTTP 500")) is None
    with pytest.raises(EvalError, match="different prompts"):
        pair_outcome(*both("p", "A", "B")[:1], both("q", "A", "B")[1])
    with pytest.raises(EvalError, match="expected candidate_first then baseline_first"):
        pair_outcome(*reversed(both("p", "A", "B")))
    with pytest.raises(EvalError, match="order"):
        Judgment("p", "first", "[[A]]", "A")  # type: ignore[arg-type]


def test_pair_outcomes_and_position_bias_count_by_hand():
    judgments = [
        *both("win", "A", "B"),  # consistent: candidate 1 + 1
        *both("flip", "A", "A"),  # position A twice: scores 1, 0
        *both("half", "tie", "B"),  # scores ½, 1
        *both("bad", "B", None),  # one order unparseable
        Judgment.of_reply("lonely", "candidate_first", "[[B]]"),  # other order never judged
    ]
    outcomes, unjudged = pair_outcomes(judgments)
    assert outcomes == {"win": 1.0, "flip": 0.5, "half": 0.75}
    assert unjudged == ["bad", "lonely"]
    # Parsed: 9 judgments less 1 unparseable = 8; decisive (not tie): 7, of which A: win's A, flip's A A
    # = 3. Pairs with both orders parsed: win, flip, half; flips (scores differ): flip, half = 2;
    # same label twice: flip = 1.
    assert position_bias(judgments) == {
        "judgments": 9,
        "parsed": 8,
        "decisive": 7,
        "first_chosen": 3,
        "first_share": 3 / 7,
        "pairs": 3,
        "flips": 2,
        "flip_share": 2 / 3,
        "same_position": 1,
    }
    with pytest.raises(EvalError, match="judged candidate_first twice"):
        pair_outcomes([*both("p", "A", "B"), both("p", "A", "B")[0]])


KEY = judge_key("judge-model-7b", {"temperature": 0.0, "max_tokens": 512, "seed": 0})


def judge_all(journal: JudgmentJournal, prompts: dict[str, tuple[str, str, str]], judge) -> int:
    """A judging run as the command runs it: every prompt in both orders, skipping what the journal has.
    Returns how many judge calls it made."""
    calls = 0
    for prompt_id, (question, candidate, baseline) in prompts.items():
        for order, a, b in (("candidate_first", candidate, baseline), ("baseline_first", baseline, candidate)):
            messages = judge_messages(question, a, b)
            if journal.done(prompt_id, order, messages) is not None:
                continue
            calls += 1
            try:
                judgment = Judgment.of_reply(prompt_id, order, judge(messages))
            except ConnectionError as error:
                judgment = Judgment.failed(prompt_id, order, str(error))
            journal.record(judgment, messages)
    return calls


PROMPTS = {"p1": ("Q1?", "cand one", "base one"), "p2": ("Q2?", "cand two", "base two")}


def test_journal_round_trips_every_field(tmp_path):
    path = tmp_path / "judge" / "judgments.jsonl"
    journal = JudgmentJournal(path, KEY)
    messages = judge_messages("Q1?", "x", "y")
    recorded = [
        Judgment.of_reply("p1", "candidate_first", "Better. [[A]]"),
        Judgment.of_reply("p1", "baseline_first", "no verdict at all"),
        Judgment.failed("p2", "candidate_first", "timeout after 60 s"),
    ]
    for judgment in recorded:
        journal.record(judgment, messages)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3
    assert lines[0]["judge"] == {"model": "judge-model-7b", "template": TEMPLATE_VERSION, "decoding": KEY["decoding"]}
    assert lines[0]["verdict"] == "A" and lines[1]["verdict"] is None and lines[2]["error"] == "timeout after 60 s"
    assert len(lines[0]["messages_sha256"]) == 64 and lines[0]["time"].endswith("+00:00")

    reopened = JudgmentJournal(path, dict(reversed(list(KEY.items()))))  # key order does not matter
    assert reopened.judgments() == recorded
    assert reopened.done("p1", "candidate_first") == recorded[0]
    assert reopened.done("p1", "baseline_first") == recorded[1]  # answered, if unparseably: not re-asked
    assert reopened.done("p2", "candidate_first") is None  # a failed call is asked again
    assert reopened.done("p1", "candidate_first", judge_messages("Q1?", "regenerated", "y")) is None


def test_resume_asks_only_what_is_missing(tmp_path):
    path = tmp_path / "judgments.jsonl"
    failing = {"n": 0}

    def flaky_judge(messages):
        failing["n"] += 1
        if failing["n"] == 3:
            raise ConnectionError("connection reset")
        return "[[A]]"

    assert judge_all(JudgmentJournal(path, KEY), PROMPTS, flaky_judge) == 4
    # The next run asks only the failed judgment again; the one after that asks nothing.
    assert judge_all(JudgmentJournal(path, KEY), PROMPTS, lambda m: "[[B]]") == 1
    journal = JudgmentJournal(path, KEY)
    assert judge_all(journal, PROMPTS, lambda m: pytest.fail("asked again")) == 0
    assert journal.done("p2", "candidate_first").verdict == "B"  # the retried one: the last line wins
    assert len(path.read_text().splitlines()) == 5  # append-only: the failure stays on record


def test_a_journal_of_another_judge_is_refused(tmp_path):
    path = tmp_path / "judgments.jsonl"
    judge_all(JudgmentJournal(path, KEY), PROMPTS, lambda m: "[[A]]")
    for other in (
        judge_key("judge-model-70b", KEY["decoding"]),
        judge_key("judge-model-7b", {**KEY["decoding"], "temperature": 0.7}),
        judge_key("judge-model-7b", KEY["decoding"], template="tokenpo-pairwise-0"),
    ):
        with pytest.raises(EvalError) as error:
            JudgmentJournal(path, other)
        assert str(error.value).startswith(f"{path}: judge: written by judge ")
        assert "\n" not in str(error.value)


def test_a_torn_last_line_is_ignored_and_rewritten(tmp_path):
    path = tmp_path / "judgments.jsonl"
    judge_all(JudgmentJournal(path, KEY), PROMPTS, lambda m: "[[A]]")
    whole = path.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    path.write_bytes(whole[: -len(last)] + last[:25])  # killed in the middle of the fourth line

    journal = JudgmentJournal(path, KEY)
    assert journal.done("p2", "candidate_first") is not None
    assert journal.done("p2", "baseline_first") is None
    assert path.read_bytes() == whole[: -len(last)]  # the torn bytes are cut off
    assert judge_all(journal, PROMPTS, lambda m: "[[C]]") == 1
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["verdict"] == "tie"


def test_a_damaged_line_inside_the_journal_is_an_error(tmp_path):
    path = tmp_path / "judgments.jsonl"
    judge_all(JudgmentJournal(path, KEY), PROMPTS, lambda m: "[[A]]")
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:30]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalError, match="^" + re.escape(f"{path}:2: not a JSON line")):
        JudgmentJournal(path, KEY)
