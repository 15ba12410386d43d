"""Evaluation throughput: ``harness eval`` against the plain ``lm_eval`` command on the same model and data.

GSM8K (lm-eval's official ``gsm8k`` task: 5-shot, greedy generation) on the first N test problems,
offline from the benchmark mirror that ``harness data prepare`` builds (gsm8k only, in a scratch
folder). Both run as fresh subprocesses into fresh output folders, each with its own defaults:
``harness eval`` (hf backend, batch 8, answers journaled for resuming) and
``lm_eval --model hf --model_args pretrained=PATH`` (batch 1, dtype from the model's config) with
``--include_path`` on the same task YAMLs our evals write (the official task, only the data
source redirected). Wall time covers the whole command, model loading included. Both exact-match
scores are reported; with greedy decoding they should agree (batching pads differently, so a rare
item may differ). The vLLM backend runs when ``import vllm`` works.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokenpo_bench.report import Row, Target, compare

TASK = "gsm8k"
METRICS = ("exact_match,strict-match", "exact_match,flexible-extract")
NO_OVERHEAD = Target(">=", 1.0)
VLLM_SPEEDUP = Target(">=", 5.0)


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


def _scores(results_file: Path) -> dict[str, float]:
    row = json.loads(results_file.read_text())["results"][TASK]
    return {metric: row[metric] for metric in METRICS if metric in row}


def prepare(benchmarks: Path, scratch: Path) -> tuple[Path, Path]:
    """The prepared GSM8K mirror and a folder of task YAMLs for plain lm-eval's ``--include_path``."""
    from tokenpo.evals.data.prepare import prepare_benchmarks
    from tokenpo.evals.tasks.configs import write_task_configs

    data = scratch / "data"
    prepare_benchmarks(Path(benchmarks), data, only=[TASK])
    tasks = scratch / "lm_eval_tasks"
    write_task_configs(tasks, data)
    return data, tasks


def run_harness_eval(model_path: str, data: Path, limit: int, out: Path, backend: str = "hf") -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "tokenpo",
        "eval",
        "--model",
        model_path,
        "--tasks",
        TASK,
        "--limit",
        str(limit),
        "--data-dir",
        str(data),
        "--output",
        str(out),
        "--backend",
        backend,
    ]
    seconds = _timed(command, out.with_suffix(".log"))
    return {
        "seconds": seconds,
        "items_per_s": limit / seconds,
        "scores": _scores(out / "results.json"),
        "command": " ".join(command),
    }


def run_lm_eval(model_path: str, tasks: Path, limit: int, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path}",
        "--tasks",
        TASK,
        "--include_path",
        str(tasks),
        "--limit",
        str(limit),
        "--output_path",
        str(out),
    ]
    seconds = _timed(command, out.with_suffix(".log"))
    found = sorted(out.rglob("results_*.json"))
    if not found:
        raise RuntimeError(f"{out}: lm_eval wrote no results_*.json")
    return {
        "seconds": seconds,
        "items_per_s": limit / seconds,
        "scores": _scores(found[-1]),
        "command": " ".join(command),
    }


def vllm_available() -> str | None:
    """None when vLLM can be imported, else the reason it cannot be benchmarked."""
    return None if importlib.util.find_spec("vllm") is not None else "vLLM not installed"


def run_eval(model_path: str, benchmarks: Path, limit: int, scratch: Path) -> dict[str, Any]:
    """Both commands (and vLLM where installed) on the first ``limit`` GSM8K problems."""
    data, tasks = prepare(benchmarks, scratch)
    raw: dict[str, Any] = {"task": TASK, "limit": limit}
    for name, run in (
        ("lm_eval", lambda: run_lm_eval(model_path, tasks, limit, scratch / "lm_eval")),
        ("harness_eval", lambda: run_harness_eval(model_path, data, limit, scratch / "harness_eval")),
    ):
        try:
            raw[name] = run()
        except RuntimeError as error:
            raw[name] = {"error": str(error)}
    reason = vllm_available()
    if reason is None:
        try:
            raw["harness_eval_vllm"] = run_harness_eval(model_path, data, limit, scratch / "vllm", backend="vllm")
        except RuntimeError as error:
            raw["harness_eval_vllm"] = {"error": str(error)}
    else:
        raw["harness_eval_vllm"] = {"unavailable": reason}
    return raw


def eval_rows(raw: Mapping[str, Any]) -> list[Row]:
    """Items/s of each command, the no-overhead and vLLM targets, and both commands' exact match."""
    plain, ours, vllm = raw["lm_eval"], raw["harness_eval"], raw["harness_eval_vllm"]
    plain_rate = plain.get("items_per_s")
    failed = plain.get("error") or ours.get("error")
    rows = [
        compare(
            "eval", "lm_eval (defaults)", "GSM8K throughput", plain_rate, "items/s", unavailable=plain.get("error")
        ),
        compare(
            "eval",
            "harness eval (hf)",
            "GSM8K throughput",
            ours.get("items_per_s"),
            "items/s",
            "lm_eval",
            plain_rate,
            NO_OVERHEAD,
            unavailable=f"failed: {failed}" if failed else None,
        ),
        compare(
            "eval",
            "harness eval (vllm)",
            "GSM8K throughput",
            vllm.get("items_per_s"),
            "items/s",
            "lm_eval",
            plain_rate,
            VLLM_SPEEDUP,
            unavailable=vllm.get("unavailable") or (f"failed: {vllm['error']}" if "error" in vllm else None),
        ),
    ]
    for metric in METRICS:
        label = f"exact match [{metric.split(',')[1]}]"
        rows.append(compare("eval", "lm_eval (defaults)", label, plain.get("scores", {}).get(metric), ""))
        rows.append(
            compare(
                "eval",
                "harness eval (hf)",
                label,
                ours.get("scores", {}).get(metric),
                "",
                "lm_eval",
                plain.get("scores", {}).get(metric),
            )
        )
    return rows
