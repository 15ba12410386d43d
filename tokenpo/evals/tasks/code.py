"""The functions our HumanEval (and MBPP) task configs name instead of lm-eval's ``code_eval`` ones.

lm-eval's ``humaneval/utils.py`` loads 🤗 evaluate's ``code_eval`` when imported, which fetches a
metric script from the hub (impossible offline) and runs code without isolation. Our configs keep
the official prompt, generation settings and filters and swap only the scorer for the sandboxed
pass@k judge. ``build_predictions*`` restate the official filters (same output), because their
module cannot be imported offline; a test pins them against the official source.
"""

from __future__ import annotations

import os

from tokenpo.evals.judges.passk import pass_at_k as estimate_pass_at_k
from tokenpo.evals.judges.passk import tester_prelude
from tokenpo.sandbox import CodeJob, SandboxLimits, run_many

# lm-eval's code_eval runs each program with a 3 s timeout: the default here too (evaluate(sandbox=) overrides).
LM_EVAL_LIMITS = SandboxLimits(wall_seconds=3.0, cpu_seconds=3)
# Set by evals.evaluate from its arguments; the metric below reads them.
SANDBOX = {"limits": LM_EVAL_LIMITS, "workers": os.cpu_count() or 1}
# The prompt each prediction starts with, recorded by the filters below: lm-eval hands the metric only
# the prediction strings and the tests, and the tester runs the prompt (trusted) for the helpers the
# tests use (``poly``, ``encode_cyclic``) instead of taking the program's versions of them.
PROMPT_OF: dict[str, str] = {}


def _with_prompt(prompt: str, completion: str) -> str:
    program = prompt + completion
    PROMPT_OF[program] = prompt
    return program


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """The program is the prompt followed by each completion (lm-eval's ``create_test`` filter)."""
    return [[_with_prompt(doc["prompt"], r) for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def build_predictions_instruct(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """As :func:`build_predictions`, each completion cut at its first code fence."""
    return [
        [_with_prompt(doc["prompt"], r if r.find("```") == -1 else r[: r.find("```")]) for r in resp]
        for resp, doc in zip(resps, docs, strict=True)
    ]


def job_for(program: str, tests: str) -> CodeJob:
    """The sandbox job for one prediction: the program, and the tests run outside it (see
    :func:`tokenpo.evals.judges.passk.split_names` for which names of the tests are the program's)."""
    prompt = PROMPT_OF.get(program, "")
    prelude, remote = tester_prelude(prompt, tests, "" if prompt else program)
    return CodeJob(program, tests, prelude, remote)


def pass_at_k(references: list[str], predictions: list[list[str]], k: list[int] | int | None = None) -> dict:
    """lm-eval metric: ``{"pass@K": value}`` for one problem, each candidate run with its tests in the sandbox."""
    ks = [k] if isinstance(k, int) else list(k or [1])
    (tests,), (candidates,) = references, predictions
    if isinstance(candidates, str):  # a task without a filter hands over its one response as a string
        candidates = [candidates]
    outcomes = run_many(
        [job_for(candidate, tests) for candidate in candidates], SANDBOX["limits"], SANDBOX["workers"], description=None
    )
    n, c = len(outcomes), sum(o.passed for o in outcomes)
    return {f"pass@{kk}": estimate_pass_at_k(n, c, kk) for kk in ks if kk <= n}
