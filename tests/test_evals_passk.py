"""pass@k: the estimator against exact combinatorics, and the judge on real HumanEval and MBPP problems."""

from __future__ import annotations

import gzip
import json
from fractions import Fraction
from math import comb

import pytest

from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.passk import pass_at_k, program_for, score_samples
from tokenpo.sandbox import SandboxLimits

FAST = SandboxLimits(wall_seconds=10, cpu_seconds=5, memory_bytes=1 << 30)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 37, 100, 200])
def test_estimator_equals_exact_combinatorics(n):
    for c in range(n + 1):
        for k in {1, 2, 5, 10, n} & set(range(1, n + 1)):
            exact = 1 - Fraction(comb(n - c, k), comb(n, k))
            assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12), (n, c, k)


def test_estimator_special_cases():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(10, 3, 8) == 1.0  # n - c < k: every draw of 8 contains a correct sample
    # large n where the binomials have hundreds of digits: still exact to float precision
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)


@pytest.fixture(scope="module")
def humaneval(benchmarks_dir):
    lines = gzip.decompress((benchmarks_dir / "humaneval" / "HumanEval.jsonl.gz").read_bytes()).decode().splitlines()
    return {p["task_id"]: p for p in map(json.loads, lines)}


def test_canonical_solutions_pass_and_wrong_ones_fail(humaneval):
    chosen = ["HumanEval/0", "HumanEval/2", "HumanEval/7"]
    problems = {t: humaneval[t] for t in chosen}
    samples = []
    for task_id in chosen:  # n = 4 per problem: canonical passes once, three broken variants fail
        samples.append({"task_id": task_id, "completion": humaneval[task_id]["canonical_solution"]})
        samples.append({"task_id": task_id, "completion": "    return None\n"})
        samples.append({"task_id": task_id, "completion": "    raise ValueError('no')\n"})
        samples.append({"task_id": task_id, "completion": "    return (\n"})  # syntax error
    scores = score_samples(problems, samples, [1, 2], FAST, workers=2)
    assert [(s.task_id, s.n, s.c) for s in scores] == [(t, 4, 1) for t in chosen]
    for score in scores:
        assert score.pass_at[1] == pytest.approx(0.25)
        assert score.pass_at[2] == pytest.approx(1 - comb(3, 2) / comb(4, 2))
        reasons = [o.reason for o in score.outcomes]
        assert reasons[0] == "passed"
        assert reasons[1].startswith(("failed", "error")) and "ValueError" in reasons[2]
        assert "SyntaxError" in reasons[3]


def test_mbpp_problems_use_their_test_list_and_imports(benchmarks_dir):
    problems = {str(p["task_id"]): p for p in json.loads((benchmarks_dir / "mbpp" / "sanitized-mbpp.json").read_text())}
    needs_import = next(p for p in problems.values() if p["test_imports"] and 11 <= p["task_id"] <= 510)
    plain = problems["11"]
    samples = [
        {"task_id": str(needs_import["task_id"]), "completion": needs_import["code"]},
        {"task_id": "11", "completion": plain["code"]},
        {"task_id": "11", "completion": "def remove_Occ(s, ch):\n    return s\n"},
    ]
    scores = {s.task_id: s for s in score_samples(problems, samples, [1], FAST)}
    assert scores[str(needs_import["task_id"])].c == 1
    assert (scores["11"].n, scores["11"].c, scores["11"].pass_at[1]) == (2, 1, 0.5)
    assert "import" in program_for(needs_import, "")


def test_k_larger_than_samples_and_unknown_problems_are_user_errors(humaneval):
    problems = {"HumanEval/0": humaneval["HumanEval/0"]}
    with pytest.raises(EvalError, match="pass@10 needs at least 10 samples"):
        score_samples(problems, [{"task_id": "HumanEval/0", "completion": ""}], [1, 10], FAST)
    with pytest.raises(EvalError, match="not a known problem"):
        score_samples(problems, [{"task_id": "HumanEval/999", "completion": ""}], [1], FAST)


def test_cli_passk_writes_a_result_folder(humaneval, tmp_path):
    from tokenpo.harness.cli import main

    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps(humaneval["HumanEval/0"]) + "\n")
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": "HumanEval/0", "completion": c}) + "\n"
            for c in [humaneval["HumanEval/0"]["canonical_solution"], "    return 1\n"]
        )
    )
    passk_cli = ["judge", "passk", "--problems", str(problems), "--samples", str(samples)]
    assert main([*passk_cli, "--k", "1,2", "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["results"]["passk"]["pass@1,none"] == 0.5
    assert results["results"]["passk"]["pass@2,none"] == 1.0
    row = json.loads((tmp_path / "out" / "samples" / "passk.jsonl").read_text())
    assert row["doc_id"] == 0 and row["pass@1"] == 0.5 and [o["passed"] for o in row["outcomes"]] == [True, False]
    assert main([*passk_cli, "--k", "0", "--out", str(tmp_path / "o2")]) == 2


@pytest.mark.slow
def test_every_canonical_solution_passes_under_the_default_limits(humaneval, benchmarks_dir):
    """The sandbox must not fail honest code: every HumanEval (164) and MBPP sanitized (427) reference
    solution passes with its tests run outside the program."""
    scores = score_samples(
        humaneval, [{"task_id": t, "completion": p["canonical_solution"]} for t, p in humaneval.items()], [1]
    )
    assert [s.task_id for s in scores if s.c != 1] == [] and len(scores) == 164
    mbpp = {str(p["task_id"]): p for p in json.loads((benchmarks_dir / "mbpp" / "sanitized-mbpp.json").read_text())}
    scores = score_samples(mbpp, [{"task_id": t, "completion": p["code"]} for t, p in mbpp.items()], [1])
    assert [s.task_id for s in scores if s.c != 1] == [] and len(scores) == 427
