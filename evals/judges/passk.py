"""pass@k for generated code: run every sample against its problem's tests in the sandbox.

The unbiased estimator of Chen et al. (2021) for a problem with n samples of which c pass:

    pass@k = 1 − C(n−c, k) / C(n, k) = 1 − ∏_{i=n−c+1}^{n} (1 − k / i)   (1 when n − c < k)

The product form never builds the huge binomials, so it is exact to float precision for any n.
A benchmark's pass@k is the mean over problems.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.errors import EvalError
from evals.judges.sandbox import Outcome, SandboxLimits, run_many


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def program_for(problem: Mapping[str, Any], completion: str) -> str:
    """The program that passes iff ``completion`` solves ``problem``.

    HumanEval problems (``prompt``, ``test``, ``entry_point``): the completion continues the prompt,
    then the tests and ``check(entry_point)`` run. MBPP problems (``test_list``, optional
    ``test_imports``): the completion is the whole solution, followed by imports and asserts.
    """
    if {"prompt", "test", "entry_point"} <= problem.keys():
        return f"{problem['prompt']}{completion}\n\n{problem['test']}\ncheck({problem['entry_point']})\n"
    if "test_list" in problem:
        imports = "\n".join(problem.get("test_imports") or [])
        return f"{completion}\n\n{imports}\n" + "\n".join(problem["test_list"]) + "\n"
    raise EvalError(
        f"problem {problem.get('task_id', '?')}",
        "fields",
        "expected HumanEval (prompt, test, entry_point) or MBPP (test_list) fields",
    )


@dataclass(frozen=True)
class ProblemScore:
    task_id: str
    n: int
    c: int
    pass_at: dict[int, float]
    outcomes: list[Outcome]


def check_ks(ks: Sequence[int], n_min: int) -> None:
    for k in ks:
        if k < 1:
            raise EvalError("--k", str(k), "k must be a positive integer")
        if k > n_min:
            raise EvalError(
                "--k", str(k), f"pass@{k} needs at least {k} samples per problem; the fewest any problem has is {n_min}"
            )


def score_samples(
    problems: Mapping[str, Mapping[str, Any]],
    samples: Sequence[Mapping[str, Any]],
    ks: Sequence[int],
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> list[ProblemScore]:
    """Run every ``{task_id, completion}`` sample; pass@k per problem (problems without samples are skipped)."""
    by_task: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        task_id = sample["task_id"]
        if task_id not in problems:
            raise EvalError(f"sample {index + 1}", "task_id", f"{task_id!r} is not a known problem")
        by_task.setdefault(task_id, []).append(index)
    if not by_task:
        raise EvalError("samples", "task_id", "no samples")
    limits = limits or SandboxLimits()
    check_ks(ks, min(len(indices) for indices in by_task.values()))
    programs = [program_for(problems[s["task_id"]], s["completion"]) for s in samples]
    outcomes = run_many(programs, limits, workers, progress=progress, description="pass@k")
    scores = []
    for task_id, indices in by_task.items():
        mine = [outcomes[i] for i in indices]
        c = sum(o.passed for o in mine)
        scores.append(ProblemScore(task_id, len(mine), c, {k: pass_at_k(len(mine), c, k) for k in ks}, mine))
    return scores


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / √n; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)
