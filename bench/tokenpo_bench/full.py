"""Full benchmarks of one model: every task of the paper suite, whole, and a page of the scores.

``python -m tokenpo_bench.full run --out DIR`` runs each task of :data:`TASKS` (cheapest first)
through ``harness eval`` into ``DIR/harness/TASK`` (any backend; answers journaled, so a killed or
stopped run continues where it was when started again) and, for the tasks named with
``--lm-eval``, through plain ``lm_eval --model hf`` with its defaults on the same task files and
data into ``DIR/lm_eval/TASK``. Each command's wall time is added to ``DIR/full.json``, and each
finished run leaves a small record in ``--records`` (``docs/bench/full/TOOL-TASK.json`` in the
repository: scores, standard errors, item count, backend, versions, wall time; no item, no answer),
so the benchmark can be advanced a few tasks per machine and what is done is never run again.
``python -m tokenpo_bench.full page --update docs/full-benchmarks.md`` writes the table of these
records (with the model card's figure where it publishes one) between the page's markers, so the
page holds only measured numbers. GPQA is reported as scores
only: plain lm_eval runs it without ``--log_samples``, and no item is ever printed.
"""

from __future__ import annotations

import argparse
import contextlib
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
RECORDS = Path(__file__).resolve().parents[2] / "docs" / "bench" / "full"
TOOLS = ("harness", "lm_eval")
RECORDS_HELP = "folder of the finished runs' records (default: %(default)s)"


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


def _finished(records: Path, target: Path, tool: str, task: str) -> bool:
    return (records / f"{tool}-{task}.json").is_file() or _results(target) is not None


def run(args: argparse.Namespace) -> int:
    from tokenpo.harness.models import resolve_model

    out, data = Path(args.out), Path(args.data_dir)
    state = out / "full.json"
    tasks = [t for t in TASKS if t in args.tasks.split(",")] if args.tasks else list(TASKS)
    plain = set((args.lm_eval or "").split(","))
    records = Path(args.records)
    collect(out, records)
    for task in tasks:  # task by task, both tools: a stopped run has whole rows of the table
        target = out / "harness" / task
        if not _finished(records, target, "harness", task):
            print(f"harness eval {task} …", flush=True)
            options = args.harness_options or (SERVED if task in GENERATIVE else LOCAL)
            command = harness_command(args.model, data, task, target, options.split())
            _run(command, out / "logs" / f"harness-{task}.log", state, f"harness/{task}")
            collect(out, records)
        target = out / "lm_eval" / task
        if task in plain and not _finished(records, target, "lm_eval", task):
            print(f"lm_eval {task} …", flush=True)
            command = lm_eval_command(resolve_model(args.model), data, task, target)
            _run(command, out / "logs" / f"lm_eval-{task}.log", state, f"lm_eval/{task}")
            collect(out, records)
    return 0


def _results(folder: Path) -> dict[str, Any] | None:
    found = [folder / "results.json"] if (folder / "results.json").is_file() else sorted(folder.rglob("results_*.json"))
    return json.loads(found[-1].read_text()) if found else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tokenpo-harness", "lm_eval", "torch", "transformers"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _items(results: dict[str, Any], task: str) -> int | None:
    """A task's item count; a group (MMLU) has no ``n-samples`` entry of its own, its row's ``sample_len``
    is the count over its subtasks."""
    if task in results.get("n-samples", {}):
        return results["n-samples"][task]["effective"]
    return results["results"].get(task, {}).get("sample_len")


def _n_shot(results: dict[str, Any], task: str) -> int | None:
    """A task's few-shot count; a group's is its subtasks' when they all agree."""
    shots = results.get("n-shot", {})
    if task in shots:
        return shots[task]
    of_subtasks = {n for name, n in shots.items() if name.startswith(f"{task}_")}
    return of_subtasks.pop() if len(of_subtasks) == 1 else None


def make_record(results: dict[str, Any], task: str, tool: str, run: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of one finished run: the task's (and its subgroups') numeric scores, the item
    count, the backend and settings it ran with, versions and wall time. No item and no answer."""
    rows = {name: {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for name, row in results["results"].items() if name == task or name.startswith(f"{task}_")}  # fmt: skip
    harness = results.get("harness", {})
    return {
        "task": task,
        "tool": tool,
        "items": _items(results, task),
        "n-shot": _n_shot(results, task),
        "backend": harness.get("backend", "hf (lm_eval defaults)" if tool == "lm_eval" else None),
        "settings": _settings(harness),
        "results": rows,
        "seconds": round(sum(i["seconds"] for i in run["invocations"]), 1),
        "invocations": len(run["invocations"]),
        "ended": run["invocations"][-1]["ended"],
        "command": _portable(run["command"]),
        "versions": _versions(),
        "cores": os.cpu_count(),
    }


# A command's local paths, as the record shows them.
PLACEHOLDERS = {"--data-dir": "PREPARED", "--output": "OUT", "--output_path": "OUT", "--include_path": "TASKS"}


def _portable(command: str) -> str:
    """The command after ``python -m``, its local paths replaced by the names the page uses."""
    words = command.split(" -m ", 1)[-1].split(" ")
    for index, word in enumerate(words[:-1]):
        if word in PLACEHOLDERS:
            words[index + 1] = PLACEHOLDERS[word]
        elif word == "--model_args" and words[index + 1].startswith("pretrained="):
            words[index + 1] = "pretrained=MODEL_FOLDER"
    return " ".join(words)


def _settings(harness: dict[str, Any]) -> dict[str, Any]:
    """How the answers were computed: a server's dtype and requests in flight (its batches are its own),
    else the batch size; lm-eval's seed."""
    server = (harness.get("model_identity") or {}).get("server")
    if isinstance(server, dict):
        return {"dtype": server.get("dtype"), "concurrent": server.get("concurrent"), "seed": harness.get("seed")}
    return {k: harness[k] for k in ("batch_size", "dtype", "seed") if k in harness}


def collect(out: Path, records: Path) -> list[Path]:
    """Write a record for every finished run in ``out`` that has none yet; returns the new records."""
    state = json.loads((out / "full.json").read_text()) if (out / "full.json").is_file() else {"runs": {}}
    written = []
    for tool in TOOLS:
        for task in TASKS:
            run, target = state["runs"].get(f"{tool}/{task}"), records / f"{tool}-{task}.json"
            results = _results(out / tool / task)
            if target.is_file() or results is None or not run or not run["invocations"][-1]["finished"]:
                continue
            records.mkdir(parents=True, exist_ok=True)
            write_atomic(target, json.dumps(make_record(results, task, tool, run), indent=2) + "\n")
            written.append(target)
    return written


def _load(records: Path, tool: str, task: str) -> dict[str, Any] | None:
    path = records / f"{tool}-{task}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(record: dict[str, Any] | None, task: str, key: str) -> str:
    if record is None or key not in record["results"].get(task, {}):
        return "–"
    row = record["results"][task]
    stderr = row.get(key.replace(",", "_stderr,"))
    value = 100 * row[key]
    return f"{value:.2f} ± {100 * stderr:.2f}" if isinstance(stderr, float) else f"{value:.2f}"


def _wall(record: dict[str, Any] | None) -> str:
    if record is None:
        return "–"
    resumed = f" ({record['invocations']} runs)" if record["invocations"] > 1 else ""
    return f"{record['seconds'] / 60:.1f} min{resumed}"


def table(records: Path) -> str:
    """The markdown table of every task's scores (×100) with their standard errors and wall times."""
    head = ("task", "items", "metric", "harness eval", "backend", "plain lm_eval", "model card",
            "wall time (harness / lm_eval)")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---|---:|---|---:|---|---|"]
    for task in TASKS:
        ours, plain = _load(records, "harness", task), _load(records, "lm_eval", task)
        items = (ours or plain or {}).get("items") or "–"
        walls = f"{_wall(ours)} / {_wall(plain)}"
        backend = _backend(ours)
        card = MODEL_CARD.get(task) or "not on the card"
        for index, (key, label) in enumerate(METRICS[task]):
            first = (task, items, backend, card, walls) if index == 0 else ("",) * 5
            cells = (first[0], first[1], label, _cell(ours, task, key), first[2], _cell(plain, task, key), first[3],
                     first[4])  # fmt: skip
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _backend(record: dict[str, Any] | None) -> str:
    if record is None:
        return "–"
    settings = record["settings"]
    extra = [f"batch {settings['batch_size']}" if "batch_size" in settings and record["backend"] == "hf" else "",
             f"{settings['concurrent']} concurrent" if settings.get("concurrent") else ""]  # fmt: skip
    return ", ".join([str(record["backend"]), *filter(None, extra)])


def page(args: argparse.Namespace) -> int:
    text = table(Path(args.records))
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
    runner.add_argument("--records", default=str(RECORDS), help=RECORDS_HELP)
    runner.set_defaults(run=run)
    pager = commands.add_parser("page", help="the table of scores (into a page between its markers with --update)")
    pager.add_argument("--records", default=str(RECORDS), help=RECORDS_HELP)
    pager.add_argument("--update", help="a markdown page with the begin/end markers")
    pager.set_defaults(run=page)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
