"""Full benchmarks of one model: every task of the paper suite, whole, and a page of the scores.

``python -m tokenpo_bench.full run --out DIR`` runs each task of :data:`TASKS` (cheapest first)
through ``harness eval`` into ``DIR/harness/TASK`` (any backend; answers journaled, so a killed or
stopped run continues where it was when started again) and, for the tasks named with
``--lm-eval``, through plain ``lm_eval --model hf`` with its defaults on the same task files and
data into ``DIR/lm_eval/TASK``. Each command's wall time is added to ``DIR/full.json``.
``python -m tokenpo_bench.full page DIR --update docs/full-benchmarks.md`` writes the table of
scores (with standard errors, the model card's figure where it publishes one, and wall times)
between the page's markers, so the page holds only measured numbers. GPQA is reported as scores
only: plain lm_eval runs it without ``--log_samples``, and no item is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenpo.core.files import write_atomic

# Cheapest first, so a stopped run has finished the most benchmarks.
TASKS = (
    "gpqa_diamond_zeroshot", "truthfulqa_mc1", "truthfulqa_mc2", "humaneval", "truthfulqa_gen", "ifeval", "gsm8k",
    "mmlu",
)  # fmt: skip
# Each task through the backend that is faster for it on a CPU: generation through a vLLM server (it
# batches decoding), multiple choice through the hf backend (vLLM's CPU build scores requests with
# prompt log-probabilities one at a time and re-reads the shared few-shot primer for every choice:
# TruthfulQA mc1 ran at 2.5 requests/s through it).
GENERATIVE = {"humaneval", "truthfulqa_gen", "ifeval", "gsm8k"}
SERVED = "--backend vllm-server --concurrent 32"
LOCAL = "--backend hf --batch-size 8"
# The scores shown per task: (results key, label).
METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "gpqa_diamond_zeroshot": (("acc,none", "acc"), ("acc_norm,none", "acc_norm")),
    "truthfulqa_mc1": (("acc,none", "acc"),),
    "truthfulqa_mc2": (("acc,none", "acc"),),
    "truthfulqa_gen": (("bleu_acc,none", "bleu_acc"), ("rougeL_acc,none", "rougeL_acc")),
    "humaneval": (("pass@1,create_test", "pass@1"),),
    "ifeval": (
        ("prompt_level_strict_acc,none", "prompt-level strict"),
        ("inst_level_strict_acc,none", "instruction-level strict"),
        ("prompt_level_loose_acc,none", "prompt-level loose"),
        ("inst_level_loose_acc,none", "instruction-level loose"),
    ),
    "gsm8k": (("exact_match,strict-match", "exact match, strict"), ("exact_match,flexible-extract", "flexible")),
    "mmlu": (("acc,none", "acc"),),
}
# SmolLM2-135M-Instruct's model card (lighteval, zero-shot unless stated); None: not on the card.
MODEL_CARD: dict[str, str | None] = {
    "ifeval": "29.9 (average of prompt- and instruction-level)",
    "gsm8k": "1.4 (5-shot)",
    "mmlu": "29.3 (cloze formulation)",
}
BEGIN, END = "<!-- full-benchmarks:begin -->", "<!-- full-benchmarks:end -->"


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_ALLOW_CODE_EVAL": "1"}


def _record(state_file: Path, key: str, seconds: float, finished: bool, command: list[str]) -> None:
    state = json.loads(state_file.read_text()) if state_file.is_file() else {"runs": {}}
    run = state["runs"].setdefault(key, {"invocations": []})
    run["invocations"].append({"seconds": round(seconds, 1), "finished": finished, "ended": time.strftime("%FT%T")})
    run["command"] = " ".join(command)
    write_atomic(state_file, json.dumps(state, indent=2) + "\n")


def _run(command: list[str], log: Path, state_file: Path, key: str) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=_offline_env())
    _record(state_file, key, time.perf_counter() - started, done.returncode == 0, command)
    if done.returncode != 0:
        print(f"{key}: exited with {done.returncode} (log: {log})", flush=True)
    return done.returncode == 0


def harness_command(model: str, data: Path, task: str, out: Path, options: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "tokenpo", "eval", "--model", model, "--tasks", task, "--data-dir", str(data),
            "--output", str(out), "--no-progress", *options]  # fmt: skip


def lm_eval_command(model_path: str, data: Path, task: str, out: Path) -> list[str]:
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_path}",
               "--tasks", task, "--include_path", str(data / "lm_eval_tasks"), "--output_path", str(out)]  # fmt: skip
    return command if "gpqa" in task else [*command, "--log_samples"]  # GPQA items are never written out


def run(args: argparse.Namespace) -> int:
    from tokenpo.harness.models import resolve_model

    out, data = Path(args.out), Path(args.data_dir)
    state = out / "full.json"
    tasks = [t for t in TASKS if t in args.tasks.split(",")] if args.tasks else list(TASKS)
    plain = set((args.lm_eval or "").split(","))
    for task in tasks:  # task by task, both tools: a stopped run has whole rows of the table
        target = out / "harness" / task
        if not (target / "results.json").is_file():
            print(f"harness eval {task} …", flush=True)
            options = args.harness_options or (SERVED if task in GENERATIVE else LOCAL)
            command = harness_command(args.model, data, task, target, options.split())
            _run(command, out / "logs" / f"harness-{task}.log", state, f"harness/{task}")
        target = out / "lm_eval" / task
        if task in plain and not list(target.rglob("results_*.json")):
            print(f"lm_eval {task} …", flush=True)
            command = lm_eval_command(resolve_model(args.model), data, task, target)
            _run(command, out / "logs" / f"lm_eval-{task}.log", state, f"lm_eval/{task}")
    return 0


def _results(folder: Path) -> dict[str, Any] | None:
    found = [folder / "results.json"] if (folder / "results.json").is_file() else sorted(folder.rglob("results_*.json"))
    return json.loads(found[-1].read_text()) if found else None


def _cell(results: dict[str, Any] | None, task: str, key: str) -> str:
    if results is None or key not in results["results"].get(task, {}):
        return "–"
    row = results["results"][task]
    stderr = row.get(key.replace(",", "_stderr,"))
    value = 100 * row[key]
    return f"{value:.2f} ± {100 * stderr:.2f}" if isinstance(stderr, float) else f"{value:.2f}"


def _wall(state: dict[str, Any], key: str) -> str:
    run = state.get("runs", {}).get(key)
    if not run or not run["invocations"][-1]["finished"]:
        return "–"
    seconds = sum(i["seconds"] for i in run["invocations"])
    resumed = f" ({len(run['invocations'])} runs)" if len(run["invocations"]) > 1 else ""
    return f"{seconds / 60:.1f} min{resumed}"


def table(out: Path) -> str:
    """The markdown table of every task's scores (×100) with their standard errors and wall times."""
    state = json.loads((out / "full.json").read_text()) if (out / "full.json").is_file() else {}
    head = ("task", "items", "metric", "harness eval", "backend", "plain lm_eval", "model card",
            "wall time (harness / lm_eval)")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---|---:|---|---:|---|---|"]
    for task in TASKS:
        ours, plain = _results(out / "harness" / task), _results(out / "lm_eval" / task)
        items = (ours or plain or {}).get("n-samples", {}).get(task, {}).get("effective", "–")
        walls = f"{_wall(state, f'harness/{task}')} / {_wall(state, f'lm_eval/{task}')}"
        backend = (ours or {}).get("harness", {}).get("backend", "–")
        card = MODEL_CARD.get(task) or "not on the card"
        for index, (key, label) in enumerate(METRICS[task]):
            first = (task, items, backend, card, walls) if index == 0 else ("",) * 5
            cells = (first[0], first[1], label, _cell(ours, task, key), first[2], _cell(plain, task, key), first[3],
                     first[4])  # fmt: skip
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def page(args: argparse.Namespace) -> int:
    text = table(Path(args.out))
    if args.update is None:
        print(text)
        return 0
    target = Path(args.update)
    current = target.read_text(encoding="utf-8")
    if BEGIN not in current or END not in current:
        raise SystemExit(f"{target}: no {BEGIN} … {END} markers to write the table between")
    head, rest = current.split(BEGIN, 1)
    write_atomic(target, f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenpo_bench.full", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="run the tasks not finished yet (a stopped task continues)")
    runner.add_argument("--out", required=True, help="folder of results, logs and full.json")
    runner.add_argument("--data-dir", required=True, help="a folder made by `harness data prepare`")
    runner.add_argument("--model", default="smollm2-135m-instruct")
    runner.add_argument("--tasks", help=f"comma-separated subset of {','.join(TASKS)} (default all)")
    runner.add_argument("--harness-options", help=f"options for harness eval (default: '{SERVED}' for generative "
                        f"tasks, '{LOCAL}' for multiple choice)")  # fmt: skip
    runner.add_argument("--lm-eval", help="comma-separated tasks to run through plain lm_eval as well")
    runner.set_defaults(run=run)
    pager = commands.add_parser("page", help="the table of scores (into a page between its markers with --update)")
    pager.add_argument("out")
    pager.add_argument("--update", help="a markdown page with the begin/end markers")
    pager.set_defaults(run=page)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
