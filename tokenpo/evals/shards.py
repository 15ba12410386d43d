"""Sharded evaluation: n processes answer disjoint parts of the requests, then one pass scores them all.

Each shard is :func:`tokenpo.evals.evaluate` with ``shard=(i, n)`` in a freshly spawned process
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


def _answer_part(evaluate: Callable[..., Any], arguments: dict[str, Any], shard: tuple[int, int]) -> tuple[int, int]:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // shard[1]))  # the shards share the machine's cores
    run = evaluate(**arguments, shard=shard)
    return run.reused_requests, run.computed_requests


def run_shards(count: int, evaluate: Callable[..., Any], arguments: dict[str, Any]) -> None:
    """Run ``count`` shards of ``evaluate(**arguments)`` side by side; the first error stops them all.

    (``evaluate`` is passed in, not imported, so that this module and the one calling it stay acyclic.)"""
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads
    with (
        progress.task("shards", total=count, unit="shard") as bar,
        ProcessPoolExecutor(max_workers=count, mp_context=context) as pool,
    ):
        futures = [pool.submit(_answer_part, evaluate, arguments, (index, count)) for index in range(count)]
        for future in as_completed(futures):
            future.result()
            bar.advance()
