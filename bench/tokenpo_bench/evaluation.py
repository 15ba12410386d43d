"""Evaluation throughput: ``harness eval`` on each backend against the plain ``lm_eval`` command.

GSM8K (lm-eval's official ``gsm8k`` task: 5-shot, greedy generation) on the first N test problems,
offline from the benchmark mirror that ``harness data prepare`` builds (gsm8k only, in a scratch
folder). Every contender runs as a fresh subprocess into a fresh output folder, one after another:

- ``lm_eval --model hf --model_args pretrained=PATH`` with its defaults (batch 1, the model's dtype),
  ``--include_path`` on the task YAMLs our evals write (the official task, data source redirected);
- ``harness eval --backend hf`` (batch 8, answers journaled for resuming);
- ``harness eval --backend vllm-server``: a vLLM server from the environment ``harness vllm install``
  made, in the model's own dtype (so its answers are the hf backend's), and again in bfloat16 (faster
  on CPUs with bf16 units, answers no longer the same: reported, no target; not run on a CPU without
  them, where bfloat16 is emulated);
- ``harness eval --backend vllm`` (vLLM in this process) when ``import vllm`` works here.

Wall time covers the whole command: interpreter, model loading and the server's start-up included.
Beside each contender's exact match, the share of problems on which its answer (the filtered
response) equals the hf backend's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tokenpo_bench.report import Row, Target, compare

TASK = "gsm8k"
METRICS = ("exact_match,strict-match", "exact_match,flexible-extract")
NO_OVERHEAD = Target(">=", 1.0)  # harness eval (hf) against plain lm_eval
SERVING_SPEEDUP = Target(">=", 4.0)  # a vLLM backend against harness eval (hf)
SERVER_CONCURRENT = "32"  # requests in flight: enough for vLLM to batch decoding on 2 cores


@dataclass(frozen=True)
class Backend:
    """One ``harness eval`` contender: its key in the raw results, row label, extra options, target."""

    key: str
    label: str
    options: tuple[str, ...]
    target: Target | None


HF = Backend("harness_eval", "harness eval (hf)", ("--backend", "hf"), NO_OVERHEAD)
SERVED = (
    Backend(
        "harness_eval_vllm_server",
        "harness eval (vllm-server)",
        ("--backend", "vllm-server", "--concurrent", SERVER_CONCURRENT),
        SERVING_SPEEDUP,
    ),
    Backend(
        "harness_eval_vllm_server_bf16",
        "harness eval (vllm-server, bfloat16)",
        ("--backend", "vllm-server", "--concurrent", SERVER_CONCURRENT, "--dtype", "bfloat16"),
        None,
    ),
)
IN_PROCESS = Backend("harness_eval_vllm", "harness eval (vllm in-process)", ("--backend", "vllm"), SERVING_SPEEDUP)


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _timed(command: list[str], log: Path) -> float:
    """Run ``command`` with its output in ``log``; its wall seconds. A failure raises with the log's last line."""
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=_offline_env())
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(
            f"{Path(command[2]).name if len(command) > 2 else command[0]} exited with "
            f"{done.returncode}: {lines[-1] if lines else '?'}"
        )
    return seconds


def _scores(results_file: Path, task: str = TASK, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    row = json.loads(results_file.read_text())["results"][task]
    return {metric: row[metric] for metric in metrics if metric in row}


def documents(results_file: Path) -> int:
    """The documents a results file scored: the sum of its tasks' effective sample counts."""
    return sum(count["effective"] for count in json.loads(results_file.read_text())["n-samples"].values())


def _answers(samples_file: Path) -> dict[int, str]:
    """Each problem's answer: its filtered response (strict match), by document id."""
    rows = map(json.loads, samples_file.read_text().splitlines())
    return {row["doc_id"]: row["filtered_resps"][0] for row in rows if row["filter"] == "strict-match"}


def agreement(ours: Mapping[int, str], theirs: Mapping[int, str]) -> float | None:
    """The share of the problems both answered on which the answers are the same."""
    common = set(ours) & set(theirs)
    return sum(ours[i] == theirs[i] for i in common) / len(common) if common else None


def prepare(benchmarks: Path, scratch: Path, task: str = TASK) -> tuple[Path, Path]:
    """The prepared mirror of ``task``'s benchmark and a folder of task YAMLs for plain lm-eval's
    ``--include_path``."""
    from tokenpo.evals.data.prepare import prepare_benchmarks
    from tokenpo.evals.tasks.configs import write_task_configs

    data = scratch / "data"
    prepare_benchmarks(Path(benchmarks), data, only=[task])
    tasks = scratch / "lm_eval_tasks"
    write_task_configs(tasks, data)
    return data, tasks


def run_harness_eval(
    model_path: str, data: Path, limit: int, out: Path, options: Sequence[str], task: str = TASK
) -> dict[str, Any]:
    """``harness eval`` at its defaults but ``options`` (GSM8K: its answers too)."""
    command = [
        sys.executable, "-m", "tokenpo", "eval", "--model", model_path, "--tasks", task, "--limit", str(limit),
        "--data-dir", str(data), "--output", str(out), *options,
    ]  # fmt: skip
    seconds = _timed(command, out.with_suffix(".log"))
    items = documents(out / "results.json")
    result = {"seconds": seconds, "items": items, "items_per_s": items / seconds, "command": " ".join(command)}
    if task == TASK:
        result |= {"scores": _scores(out / "results.json"), "answers": _answers(out / "samples" / f"{TASK}.jsonl")}
    return result


def run_lm_eval(model_path: str, tasks: Path, limit: int, out: Path, task: str = TASK) -> dict[str, Any]:
    """Plain ``lm_eval`` at its defaults (batch 1) on the same task files (GSM8K: its answers too)."""
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_path}",
        "--tasks", task, "--include_path", str(tasks), "--limit", str(limit), "--output_path", str(out),
        "--log_samples",
    ]  # fmt: skip
    seconds = _timed(command, out.with_suffix(".log"))
    found = sorted(out.rglob("results_*.json"))
    if not found:
        raise RuntimeError(f"{out}: lm_eval wrote no results_*.json")
    items = documents(found[-1])
    result = {"seconds": seconds, "items": items, "items_per_s": items / seconds, "command": " ".join(command)}
    if task == TASK:
        samples = sorted(out.rglob(f"samples_{TASK}_*.jsonl"))
        result |= {"scores": _scores(found[-1]), "answers": _answers(samples[-1]) if samples else {}}
    else:
        result["results_file"] = str(found[-1])
    return result


def vllm_available() -> str | None:
    """None when vLLM can be imported here, else the reason the in-process backend cannot be benchmarked."""
    return None if importlib.util.find_spec("vllm") is not None else "vLLM not installed in this environment"


def server_available() -> str | None:
    """None when ``harness vllm install`` made a vLLM environment, else the reason there is none."""
    from tokenpo.harness.errors import HarnessError
    from tokenpo.harness.vllm_env import vllm_python

    try:
        vllm_python()
    except HarnessError as error:
        return str(error)
    return None


def bf16_unavailable() -> str | None:
    """None when bfloat16 runs natively here, else why the bfloat16 server is not measured."""
    from tokenpo.core.hardware import native_bf16

    return None if native_bf16() else "this CPU has no native bfloat16 (AVX512-BF16 or AMX): it would be emulated"


def run_eval(model_path: str, benchmarks: Path, limit: int, scratch: Path) -> dict[str, Any]:
    """Every contender on the first ``limit`` GSM8K problems (each JSON-ready: answers keyed by str)."""
    data, tasks = prepare(benchmarks, scratch)
    raw: dict[str, Any] = {"task": TASK, "limit": limit, "server_concurrent": int(SERVER_CONCURRENT)}
    runs: list[tuple[str, Any, str | None]] = [
        ("lm_eval", partial(run_lm_eval, model_path, tasks, limit, scratch / "lm_eval"), None),
        (HF.key, partial(run_harness_eval, model_path, data, limit, scratch / HF.key, HF.options), None),
    ]
    served = [(b, server_available() or (bf16_unavailable() if "bfloat16" in b.options else None)) for b in SERVED]
    for backend, reason in [*served, (IN_PROCESS, vllm_available())]:
        run = partial(run_harness_eval, model_path, data, limit, scratch / backend.key, backend.options)
        runs.append((backend.key, run, reason))
    for key, run, reason in runs:
        if reason is not None:
            raw[key] = {"unavailable": reason}
            continue
        try:
            raw[key] = run()
        except RuntimeError as error:
            raw[key] = {"error": str(error)}
    reference = raw[HF.key].get("answers", {})
    for key in [k for k, *_ in runs if k != HF.key]:
        if "answers" in raw[key]:
            raw[key]["same_answers_as_hf"] = agreement(raw[key]["answers"], reference)
    for result in raw.values():
        if isinstance(result, dict) and "answers" in result:
            result["answers"] = {str(doc): answer for doc, answer in result["answers"].items()}
    return raw


def _unavailable(result: Mapping[str, Any]) -> str | None:
    return result.get("unavailable") or (f"failed: {result['error']}" if "error" in result else None)


def eval_rows(raw: Mapping[str, Any]) -> list[Row]:
    """Items/s of each contender with its target, exact match, and agreement with the hf backend's answers."""
    plain, ours = raw["lm_eval"], raw[HF.key]
    rows = [
        compare(
            "eval", "lm_eval (defaults)", "GSM8K throughput", plain.get("items_per_s"), "items/s",
            unavailable=_unavailable(plain),
        ),
        compare(
            "eval", HF.label, "GSM8K throughput", ours.get("items_per_s"), "items/s", "lm_eval",
            plain.get("items_per_s"), HF.target, unavailable=_unavailable(ours) or _unavailable(plain),
        ),
    ]  # fmt: skip
    for backend in (*SERVED, IN_PROCESS):
        result = raw.get(backend.key, {"unavailable": "not run"})
        rows.append(
            compare(
                "eval", backend.label, "GSM8K throughput", result.get("items_per_s"), "items/s", HF.label,
                ours.get("items_per_s"), backend.target, unavailable=_unavailable(result) or _unavailable(ours),
            )
        )  # fmt: skip
    for metric in METRICS:
        label = f"exact match [{metric.split(',')[1]}]"
        rows.append(compare("eval", "lm_eval (defaults)", label, plain.get("scores", {}).get(metric), ""))
        for backend in (HF, *SERVED, IN_PROCESS):
            result = raw.get(backend.key, {})
            if "scores" in result:
                theirs = plain.get("scores", {}).get(metric)
                rows.append(compare("eval", backend.label, label, result["scores"].get(metric), "", "lm_eval", theirs))
    others = [("lm_eval (defaults)", plain)] + [(b.label, raw.get(b.key, {})) for b in (*SERVED, IN_PROCESS)]
    for name, result in others:
        if result.get("same_answers_as_hf") is not None:
            rows.append(compare("eval", name, "answers equal to hf's", 100 * result["same_answers_as_hf"], "%"))
    return rows
