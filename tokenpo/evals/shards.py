"""Sharded evaluation: n processes answer disjoint parts of the requests, then one pass scores them all.

Each shard is a pass of the evaluation with ``shard=(i, n)`` in a freshly spawned process
(its own model, or its own vLLM server): it answers the requests whose key falls in its part into a
journal of its own and writes no results. The caller's own pass then finds every answer journaled
and computes nothing, so the result is the one an unsharded run gives, and a killed shard resumes
from its journal like any evaluation.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tokenpo.core import progress
from tokenpo.evals.errors import EvalError
from tokenpo.evals.evaluation import Evaluation

# One pass of an evaluation: ``run(evaluation, shard=(i, n))`` answers the i-th of n parts (an EvalRun).
EvaluationPass = Callable[..., Any]


def _answer_part(run: EvaluationPass, evaluation: Evaluation, shard: tuple[int, int]) -> tuple[int, int]:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // shard[1]))  # the shards share the machine's cores
    answered = run(evaluation, shard=shard)
    return answered.reused_requests, answered.computed_requests


def answer_in_shards(count: int, run: EvaluationPass, evaluation: Evaluation) -> None:
    """Answer every request of ``evaluation`` in ``count`` shards side by side (``run(evaluation, shard=(i,
    count))`` each, in a process of its own); the first error stops them all.

    (``run`` is passed in, not imported, so that this module and the one calling it stay acyclic.)"""
    if not evaluation.model_is_named:
        raise EvalError("shards", str(count), "shards load the model themselves: give a folder or hub id")
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads
    with (
        progress.task("shards", total=count, unit="shard") as bar,
        ProcessPoolExecutor(max_workers=count, mp_context=context) as pool,
    ):
        futures = [pool.submit(_answer_part, run, evaluation, (index, count)) for index in range(count)]
        for future in as_completed(futures):
            future.result()
            bar.advance()
