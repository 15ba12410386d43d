"""``harness eval``: lm-eval benchmarks on a model, online or offline from prepared data."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import DEFAULT_MODEL, resolve_model
from tokenpo.harness.models.cache import cache_root
from tokenpo.harness.models.store import hub_reachable
from tokenpo.harness.options import add_field_options
from tokenpo.harness.pipeline.config import EvalConfig, ServerConfig
from tokenpo.harness.vllm_env import server_backend


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a model on lm-eval benchmarks (suites or tasks)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model spec (default {DEFAULT_MODEL})")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="a built-in suite (smoke, paper) or a suite YAML file")
    which.add_argument("--tasks", help="comma-separated lm-eval task or group names")
    add_field_options(parser, EvalConfig, "limit")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir",
        help="run offline on a folder made by `harness data prepare` (default: for a model of a `harness run` "
        "output, the run's own prepared data; else $HARNESS_DATA or <cache>/benchmarks when prepared; else online)",
    )
    source.add_argument("--online", action="store_true", help="use lm-eval's tasks with their hub datasets")
    add_field_options(parser, EvalConfig, "backend", "shards")
    server = parser.add_argument_group("vllm-server backend")
    server.add_argument("--vllm-python", help="the vLLM environment's python (default: harness vllm install's)")
    server.add_argument("--base-url", help="use a running OpenAI-compatible server (http://HOST:PORT/v1) instead")
    server.add_argument("--served-name", help="the running server's model name (default: the model folder)")
    add_field_options(server, ServerConfig, "concurrent", "max_model_len", "dtype")
    parser.add_argument("--output", help="result folder (default: ./eval-results/MODEL-SUITE); re-running resumes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_field_options(parser, EvalConfig, "batch_size")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--num-fewshot", type=int, help="override every task's number of few-shot examples")
    parser.add_argument(
        "--apply-chat-template", action="store_true", help="format prompts with the model's chat template"
    )
    parser.add_argument(
        "--method", default="base", help="what trained the model (base, dpo, sparsepo-…), for the results"
    )
    add_field_options(parser, EvalConfig, "seed")
    parser.add_argument(
        "--code-timeout",
        type=float,
        default=3.0,
        help="seconds each generated program of a code task may run (default 3, lm-eval's code_eval timeout)",
    )
    parser.set_defaults(run=_run)


def data_source(data_dir: str | None, online: bool, model: str | None = None) -> Path | None:
    """The prepared folder to run offline from, or None for online.

    Without ``--data-dir``: the run's own prepared copy when ``model`` is a model of a ``harness run``
    output (``OUT/benchmark-data/mirror``, the data its evaluations used), else the default data
    folder; online only when neither is prepared and the hub answers, so a machine without either
    gets one line saying what to run instead of the hub's retries.
    """
    from tokenpo.evals.data import default_data_dir, load_manifest

    if online:
        return None
    if data_dir:
        folder = Path(data_dir)
        if load_manifest(folder) is None:
            raise HarnessError(
                f"{folder}: not a prepared data folder (run `harness data prepare --from DIR --out {folder}`)"
            )
        return folder
    candidates = [*_run_mirrors(model), default_data_dir(cache_root())]
    for folder in candidates:
        if load_manifest(folder) is not None:
            return folder
    if not hub_reachable(_PROBE_DATASET, repo_type="dataset"):
        looked = ", ".join(str(folder) for folder in candidates)
        raise HarnessError(
            f"no prepared benchmark data (looked in {looked}) and the hub cannot be reached: run `harness data "
            "prepare --from DIR` (DIR: the benchmark data folder), or pass --data-dir FOLDER"
        )
    return None


# A dataset every user of the benchmarks needs: when the hub answers for it, the tasks can be read online.
_PROBE_DATASET = "openai/gsm8k"


def _run_mirrors(model: str | None) -> list[Path]:
    """``OUT/benchmark-data/mirror`` of the ``harness run`` output a local model folder belongs to
    (``OUT/train/NAME/final``, ``OUT/train/NAME/checkpoint-N``)."""
    if model is None or not Path(model).is_dir():
        return []
    folder = Path(model)
    return [
        parent / "benchmark-data" / "mirror"
        for parent in list(folder.parents)[:3]
        if (parent / "benchmark-data" / "mirror").is_dir()
    ]


def _run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise HarnessError("--limit: expected a positive integer")
    if args.code_timeout <= 0:
        raise HarnessError("--code-timeout: expected a positive number of seconds")
    data_dir = data_source(args.data_dir, args.online, args.model)
    if data_dir is not None:
        # Offline: nothing may try the hub (datasets reads these when it is first imported).
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tokenpo.evals import evaluate
    from tokenpo.sandbox import SandboxLimits

    path = resolve_model(args.model)
    label = (args.suite and Path(args.suite).stem) or "tasks"
    output = Path(args.output or Path("eval-results") / f"{_model_label(args.model)}-{label}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    print(
        f"model: {args.model} ({path})\ndata: {'offline from ' + str(data_dir) if data_dir else 'online (hub)'}"
        f"\noutput: {output}",
        flush=True,
    )
    run = evaluate(
        path,
        tasks=tasks,
        suite=args.suite,
        output_dir=output,
        data_dir=data_dir,
        limit=args.limit,
        backend=args.backend,
        batch_size=args.batch_size,
        device=args.device,
        num_fewshot=args.num_fewshot,
        apply_chat_template=args.apply_chat_template or None,
        seed=args.seed,
        sandbox=SandboxLimits(wall_seconds=args.code_timeout, cpu_seconds=math.ceil(args.code_timeout)),
        metadata={"model_spec": args.model, "model_path": path, "method": args.method},
        server=server_backend(_server_settings(args)) if args.backend == "vllm-server" else None,
        shards=args.shards,
    )
    print(f"\nreused {run.reused_requests} answers, computed {run.computed_requests}")
    for task, row in run.results["results"].items():
        scores = ", ".join(
            f"{k.split(',')[0]}[{k.split(',')[1]}]={v:.4f}"
            for k, v in row.items()
            if "," in k and "_stderr" not in k and isinstance(v, int | float)
        )
        print(f"{task:32} {scores}")
    print(f"\nwritten: {run.output_dir / 'results.json'}")
    return 0


def _model_label(model: str) -> str:
    """The model's name in a default output folder: ``dpo-seed0-final`` for ``runs/X/train/dpo-seed0/final``."""
    path = Path(model)
    if path.name == "final" or path.name.startswith("checkpoint-"):
        return f"{path.parent.name}-{path.name}"
    return path.name


def _server_settings(args: argparse.Namespace) -> ServerConfig:
    try:
        return ServerConfig(
            python=args.vllm_python,
            base_url=args.base_url,
            served_name=args.served_name,
            concurrent=args.concurrent,
            max_model_len=args.max_model_len,
            dtype=args.dtype,
        )
    except ValueError as error:  # the dataclass's check, named as the option it came from
        name, _, problem = str(error).partition(": ")
        raise HarnessError(f"--{name.replace('_', '-')}: {problem}") from None
