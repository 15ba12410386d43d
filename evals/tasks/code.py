"""The functions our HumanEval (and MBPP) task configs name instead of lm-eval's ``code_eval`` ones.

lm-eval's ``humaneval/utils.py`` loads 🤗 evaluate's ``code_eval`` when imported, which fetches a
metric script from the hub (impossible offline) and runs code without isolation. Our configs keep
the official prompt, generation settings and filters and swap only the scorer for the sandboxed
pass@k judge. ``build_predictions*`` restate the official filters (same output), because their
module cannot be imported offline; a test pins them against the official source.
"""

from __future__ import annotations

import os

from evals.judges.passk import pass_at_k as estimate_pass_at_k
from evals.judges.sandbox import SandboxLimits, run_many

# Set by evals.evaluate from its arguments; the metric below reads them.
SANDBOX = {"limits": SandboxLimits(), "workers": os.cpu_count() or 1}


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """The program is the prompt followed by each completion (lm-eval's ``create_test`` filter)."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def build_predictions_instruct(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """As :func:`build_predictions`, each completion cut at its first code fence."""
    return [
        [doc["prompt"] + (r if r.find("```") == -1 else r[: r.find("```")]) for r in resp]
        for resp, doc in zip(resps, docs, strict=True)
    ]


def pass_at_k(references: list[str], predictions: list[list[str]], k: list[int] | int | None = None) -> dict:
    """lm-eval metric: ``{"pass@K": value}`` for one problem, each candidate run with its tests in the sandbox."""
    ks = [k] if isinstance(k, int) else list(k or [1])
    (tests,), (candidates,) = references, predictions
    if isinstance(candidates, str):  # a task without a filter hands over its one response as a string
        candidates = [candidates]
    outcomes = run_many([f"{candidate}\n{tests}" for candidate in candidates], SANDBOX["limits"], SANDBOX["workers"])
    n, c = len(outcomes), sum(o.passed for o in outcomes)
    return {f"pass@{kk}": estimate_pass_at_k(n, c, kk) for kk in ks if kk <= n}
