"""The answer journal: requests go to the model in one call, and each answer is journaled as it arrives."""

from __future__ import annotations

import json

import pytest
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from tokenpo.evals.resume import ResumableLM, read_journal, request_key


class Answers(LM):
    """Answers ``text → text.upper()`` one by one through lm-eval's cache hook, as lm-eval's models do;
    fails after ``fail_after`` answers (a kill mid-call)."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.calls: list[int] = []
        self.fail_after = fail_after

    def generate_until(self, requests, disable_tqdm=False):
        self.calls.append(len(requests))
        out = []
        for request in requests:
            if self.fail_after is not None and len(out) == self.fail_after:
                raise KeyboardInterrupt
            out.append(request.args[0].upper())
            self.cache_hook.add_partial("generate_until", request.args, out[-1])
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def _requests(texts: list[str]) -> list[Instance]:
    return [
        Instance("generate_until", {}, (text, {"until": ["\n"]}), idx=i, metadata=("t", i, 1))
        for i, text in enumerate(texts)
    ]


def test_the_model_gets_every_unanswered_request_in_one_call(tmp_path):
    inner = Answers()
    lm = ResumableLM(inner, tmp_path / "journal.jsonl")
    assert lm.generate_until(_requests([f"q{i}" for i in range(70)])) == [f"Q{i}" for i in range(70)]
    assert inner.calls == [70]  # not chunks: lm-eval batches (and a server queues) them as plain lm-eval would
    again = ResumableLM(Answers(), tmp_path / "journal.jsonl")
    assert again.generate_until(_requests([f"q{i}" for i in range(75)]))[70:] == ["Q70", "Q71", "Q72", "Q73", "Q74"]
    assert again.inner.calls == [5] and (again.reused, again.computed) == (70, 5)


def test_answers_given_before_a_kill_mid_call_are_journaled(tmp_path):
    journal = tmp_path / "journal.jsonl"
    with pytest.raises(KeyboardInterrupt):
        ResumableLM(Answers(fail_after=45), journal).generate_until(_requests([f"q{i}" for i in range(100)]))
    answered = read_journal(journal)
    assert sorted(answered.values()) == sorted(f"Q{i}" for i in range(45))
    resumed = ResumableLM(Answers(), journal)
    assert resumed.generate_until(_requests([f"q{i}" for i in range(100)])) == [f"Q{i}" for i in range(100)]
    assert resumed.inner.calls == [55] and resumed.reused == 45


def test_identical_requests_stay_distinct_answers(tmp_path):
    # A sampled pass@n task asks n identical requests: n journal entries, told apart by occurrence number.
    lm = ResumableLM(Answers(), tmp_path / "journal.jsonl")
    assert lm.generate_until(_requests(["same"] * 3 + ["other"])) == ["SAME", "SAME", "SAME", "OTHER"]
    lines = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    args = ("same", {"until": ["\n"]})
    assert {line["key"] for line in lines} == {request_key("generate_until", args, n) for n in range(3)} | {
        request_key("generate_until", ("other", {"until": ["\n"]}), 0)
    }
    assert len(lines) == 4


def test_a_model_that_reports_nothing_to_the_hook_is_journaled_from_what_it_returns(tmp_path):
    class Silent(Answers):
        def generate_until(self, requests, disable_tqdm=False):
            return [r.args[0].upper() for r in requests]

    lm = ResumableLM(Silent(), tmp_path / "journal.jsonl")
    lm.generate_until(_requests(["a", "b"]))
    assert sorted(read_journal(tmp_path / "journal.jsonl").values()) == ["A", "B"]
