"""The functions our HumanEval (and MBPP) task configs name instead of lm-eval's ``code_eval`` ones.

lm-eval's ``humaneval/utils.py`` loads 🤗 evaluate's ``code_eval`` when imported, which fetches a
metric script from the hub (impossible offline) and runs code without isolation. Our configs keep
the official prompt, generation settings and filters and swap only the scorer for the sandboxed
pass@k judge. ``build_predictions*`` restate the official filters (same output), because their
module cannot be imported offline; a test pins them against the official source.

Nothing here is set before an evaluation and read during it, so two evaluations in one process
never see each other's settings: the sandbox limits (and, if a task sets it, the worker count) are
keys of the task's ``metric_list`` entry, which lm-eval passes to :func:`pass_at_k_metric` as keyword
arguments, and the prompt a program continues travels with the program (:class:`PromptedProgram`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tokenpo.evals.judges.passk import pass_at_k as estimate_pass_at_k
from tokenpo.evals.judges.passk import tester_prelude
from tokenpo.sandbox import CodeJob, SandboxLimits, run_many

# lm-eval's code_eval runs each program with a 3 s timeout: the default here too (evaluate(sandbox=) overrides).
LM_EVAL_LIMITS = SandboxLimits(wall_seconds=3.0, cpu_seconds=3)


class PromptedProgram(str):
    """A program that continues a prompt: as a string, exactly the official filter's prediction (so lm-eval
    logs, hashes and compares it unchanged), with the prompt it continues in ``prompt``.

    lm-eval hands the metric only the predictions and the tests; the tester runs the prompt (trusted)
    for the helpers the tests use (``poly``, ``encode_cyclic``) instead of taking the program's
    versions of them, so the prompt has to reach the metric with the program.
    """

    prompt: str

    def __new__(cls, text: str, prompt: str = "") -> PromptedProgram:
        # ``prompt`` defaults to "" and is kept in the instance's __dict__, so that pickle and deepcopy,
        # which rebuild a str subclass from its text alone and then restore __dict__, keep it too.
        program = super().__new__(cls, text)
        program.prompt = prompt
        return program

    @classmethod
    def continuing(cls, prompt: str, completion: str) -> PromptedProgram:
        return cls(prompt + completion, prompt)


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """The program is the prompt followed by each completion (lm-eval's ``create_test`` filter)."""
    return [[PromptedProgram.continuing(doc["prompt"], r) for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def build_predictions_instruct(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """As :func:`build_predictions`, each completion cut at its first code fence."""
    return [
        [PromptedProgram.continuing(doc["prompt"], r if r.find("```") == -1 else r[: r.find("```")]) for r in resp]
        for resp, doc in zip(resps, docs, strict=True)
    ]


def job_for_prediction(program: str, tests: str) -> CodeJob:
    """The sandbox job for one lm-eval prediction: the program, and the tests run outside it (see
    :func:`tokenpo.evals.judges.passk.split_names` for which names of the tests are the program's).

    A :class:`PromptedProgram`'s prompt is the tester's prelude; a plain string (a task without our
    filters) has none, and the program itself is parsed for the names the tests take from it."""
    prompt = program.prompt if isinstance(program, PromptedProgram) else ""
    prelude, remote = tester_prelude(prompt, tests, "" if prompt else program)
    return CodeJob(str(program), tests, prelude, remote)


def pass_at_k_metric(
    references: list[str],
    predictions: list[list[str]],
    k: list[int] | int | None = None,
    sandbox_limits: SandboxLimits | Mapping[str, Any] = LM_EVAL_LIMITS,
    sandbox_workers: int | None = None,
) -> dict[str, float]:
    """lm-eval metric: ``{"pass@K": value}`` for one problem, each candidate run with its tests in the sandbox.

    ``k``, ``sandbox_limits`` (a :class:`SandboxLimits` or its fields, as a task YAML writes them) and
    ``sandbox_workers`` (programs run at once; None: one per core) come from the task's ``metric_list``
    entry, which lm-eval passes to its metric as keyword arguments.
    """
    ks = [k] if isinstance(k, int) else list(k or [1])
    limits = sandbox_limits if isinstance(sandbox_limits, SandboxLimits) else SandboxLimits(**sandbox_limits)
    workers = sandbox_workers or os.cpu_count() or 1
    (tests,), (candidates,) = references, predictions
    if isinstance(candidates, str):  # a task without a filter hands over its one response as a string
        candidates = [candidates]
    jobs = [job_for_prediction(candidate, tests) for candidate in candidates]
    outcomes = run_many(jobs, limits, workers, description=None)
    n, c = len(outcomes), sum(o.passed for o in outcomes)
    return {f"pass@{kk}": estimate_pass_at_k(n, c, kk) for kk in ks if kk <= n}
