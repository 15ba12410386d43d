"""One measurement per fresh process, contenders alternated round by round.

Peak resident memory only grows within a process (``ru_maxrss``), and a process that ran one
contender has warm caches and a fragmented heap: each measurement therefore gets its own spawned
interpreter. Rounds visit the contenders ABC, CBA, ABC, …: every contender's mean position over
two rounds is the same, so a linear drift of the machine (another job starting, thermal limits)
cancels out of the medians' comparison instead of favouring whoever runs first.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def alternation_order(contenders: Sequence[T], rounds: int) -> list[tuple[int, T]]:
    """``(round, contender)`` in run order: forward in even rounds, reversed in odd ones."""
    if rounds < 1:
        raise ValueError(f"rounds must be positive, got {rounds}")
    order = []
    for round_index in range(rounds):
        visit = contenders if round_index % 2 == 0 else list(reversed(contenders))
        order.extend((round_index, contender) for contender in visit)
    return order


def _child(target: Callable[..., dict], kwargs: dict, results: Any) -> None:
    try:
        results.put(("ok", target(**kwargs)))
    except BaseException as error:  # the parent reports it; the process ends either way
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        results.put(("error", last, traceback.format_exc()))


def run_isolated(target: Callable[..., dict], kwargs: dict, poll_seconds: float = 2.0) -> dict:
    """``target(**kwargs)`` in a freshly spawned interpreter; its dict, or ``{"error": one line}``.

    ``target`` must be a module-level function (spawn pickles it by name). A child that dies
    without answering (killed, out of memory) is reported by its exit code.
    """
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(target, kwargs, results))
    process.start()
    try:
        while True:
            try:
                answer = results.get(timeout=poll_seconds)
                break
            except queue_module.Empty:
                if not process.is_alive():
                    try:
                        answer = results.get(timeout=poll_seconds)
                    except queue_module.Empty:
                        answer = ("error", f"process died with exit code {process.exitcode}", "")
                    break
    finally:
        process.join()
    if answer[0] == "ok":
        return answer[1]
    return {"error": answer[1], "traceback": answer[2]}
