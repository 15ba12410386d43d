"""Log-likelihood throughput: ``harness eval`` at its defaults against plain ``lm_eval`` at its own, on a
slice of MMLU (lm-eval's official ``mmlu`` group: 57 subjects, 0-shot, four answer choices scored by
log-likelihood), offline from the benchmark mirror, the first N questions of each subject.

Plain ``lm_eval`` scores one request at a time (its default batch of 1); ``harness eval`` with no
``--batch-size`` batches log-likelihood requests (:data:`tokenpo.evals.backends.DEFAULT_BATCH`). Both run
as fresh subprocesses, one after the other, each timed whole (interpreter and model loading included).
Their accuracies must be equal: batching only pads sequences lm-eval has sorted by length.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from tokenpo_bench.evaluation import documents, prepare, run_harness_eval, run_lm_eval
from tokenpo_bench.report import Row, Target, compare

TASK = "mmlu"
METRIC = "acc,none"
NO_OVERHEAD = Target(">=", 1.0)  # harness eval's defaults against plain lm_eval's


def run_scoring(model_path: str, benchmarks: Path, limit: int, scratch: Path) -> dict[str, Any]:
    """Both contenders on the first ``limit`` questions of every MMLU subject: seconds, items/s, accuracy."""
    data, tasks = prepare(benchmarks, scratch, TASK)
    raw: dict[str, Any] = {"task": TASK, "limit_per_subject": limit}
    runs = {
        "lm_eval": partial(run_lm_eval, model_path, tasks, limit, scratch / "lm_eval", TASK),
        "harness_eval": partial(
            run_harness_eval, model_path, data, limit, scratch / "harness", ("--backend", "hf"), TASK
        ),
    }
    for key, run in runs.items():
        try:
            raw[key] = run()
        except RuntimeError as error:
            raw[key] = {"error": str(error)}
    results = {"lm_eval": raw["lm_eval"].get("results_file"), "harness_eval": str(scratch / "harness" / "results.json")}
    for key, path in results.items():
        if "error" not in raw[key] and path and Path(path).is_file():
            raw[key]["accuracy"] = json.loads(Path(path).read_text())["results"][TASK][METRIC]
            raw[key]["items"] = documents(Path(path))
    return raw


def scoring_rows(raw: dict[str, Any]) -> list[Row]:
    """Items/s of both with the no-overhead target, and both accuracies (equal)."""
    plain, ours = raw["lm_eval"], raw["harness_eval"]
    failed = {key: f"failed: {raw[key]['error']}" for key in ("lm_eval", "harness_eval") if "error" in raw[key]}
    label = f"MMLU slice throughput ({raw['limit_per_subject']} per subject)"
    return [
        compare("eval", "lm_eval (defaults)", label, plain.get("items_per_s"), "items/s",
                unavailable=failed.get("lm_eval")),
        compare("eval", "harness eval (hf, defaults)", label, ours.get("items_per_s"), "items/s", "lm_eval",
                plain.get("items_per_s"), NO_OVERHEAD, unavailable=failed.get("harness_eval") or failed.get("lm_eval")),
        compare("eval", "lm_eval (defaults)", "MMLU slice acc", plain.get("accuracy"), ""),
        compare("eval", "harness eval (hf, defaults)", "MMLU slice acc", ours.get("accuracy"), "", "lm_eval",
                plain.get("accuracy")),
    ]  # fmt: skip
