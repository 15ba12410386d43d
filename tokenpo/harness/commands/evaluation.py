"""``harness eval``: lm-eval benchmarks on a model, online or offline from prepared data."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import DEFAULT_MODEL, resolve_model
from tokenpo.harness.models.cache import cache_root
from tokenpo.harness.models.store import hub_reachable
from tokenpo.harness.options import add_field_options
from tokenpo.harness.pipeline.config import EvalConfig, ServerConfig
from tokenpo.harness.vllm_env import server_backend

if TYPE_CHECKING:
    from tokenpo.evals import EvalRun
    from tokenpo.evals.hub import HubTarget


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
    parser.add_argument(
        "--output",
        "--output_path",
        help="result folder (default: ./eval-results/MODEL-SUITE); re-running resumes",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_field_options(parser, EvalConfig, "batch_size", aliases={"batch_size": ("--batch_size",)})
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--num-fewshot", "--num_fewshot", type=int, help="override every task's number of few-shot examples"
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
    _add_lm_eval_options(parser.add_argument_group("lm-eval's settings (also in lm_eval's underscore spelling)"))
    _add_hub_options(parser.add_argument_group("results to a hub dataset, in lm-eval's layout"))
    parser.set_defaults(run=_run)


def _add_lm_eval_options(group: argparse._ArgumentGroup) -> None:
    """lm_eval's prompt and generation flags, each also in lm_eval's own spelling (``--gen_kwargs``)."""
    group.add_argument(
        "--apply-chat-template",
        "--apply_chat_template",
        nargs="?",
        const=True,
        default=None,
        metavar="NAME",
        help="format prompts with the model's chat template (a template NAME is not supported)",
    )
    group.add_argument(
        "--fewshot-as-multiturn",
        "--fewshot_as_multiturn",
        nargs="?",
        const=True,
        default=None,
        type=_boolean,
        metavar="BOOL",
        help="with the chat template: few-shot examples as turns of the chat (true, lm-eval's default) or one "
        "user turn (false); needs --apply-chat-template",
    )
    add_field_options(
        group, EvalConfig, "system_instruction", aliases={"system_instruction": ("--system_instruction",)}
    )
    group.add_argument(
        "--gen-kwargs",
        "--gen_kwargs",
        nargs="+",
        metavar="K=V[,K=V]",
        help="generation arguments for every generative task, as lm_eval's --gen_kwargs (max_gen_toks=8,"
        "temperature=0); a suite task's own generation_kwargs win; results.json records each task's",
    )
    group.add_argument(
        "--predict-only",
        "--predict_only",
        action="store_true",
        help="answers without metrics (samples written, every metric lm-eval's placeholder 'bypass'), "
        "for judges; a scored run into the same --output later reuses the answers",
    )
    group.add_argument(
        "--log-samples",
        "--log_samples",
        action="store_true",
        help="accepted for lm_eval command lines: samples are always written (OUT/samples/TASK.jsonl)",
    )


def _add_hub_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--hub-results",
        metavar="ORG/NAME",
        help="upload results and samples to the hub dataset ORG/NAME-private (lm_eval --hf_hub_log_args "
        "hub_results_org=ORG,details_repo_name=NAME,push_results_to_hub=True,push_samples_to_hub=True); needs a "
        "token (hf auth login, or HF_TOKEN) and the network, checked before evaluating",
    )
    group.add_argument(
        "--hub-public", action="store_true", help="a public dataset, ORG/NAME (lm-eval's public_repo=True)"
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="with --hub-results: evaluate, then print each file and its path in the dataset; upload nothing",
    )


def _boolean(text: str) -> bool:
    """true/false (also 1/0, yes/no), as lm_eval's --fewshot_as_multiturn reads it, but any other word refused."""
    word = text.strip().lower()
    if word not in _TRUE | _FALSE:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return word in _TRUE


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


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
    settings = lm_eval_settings(args)
    hub, token = _hub_upload(args)  # refused here, before anything is evaluated
    data_dir = data_source(args.data_dir, args.online, args.model)
    if data_dir is not None and token is None:
        # Offline: nothing may try the hub (datasets reads these when it is first imported). An upload needs
        # the hub (lm-eval's dataset card reads the uploaded results back through datasets).
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
        seed=args.seed,
        sandbox=SandboxLimits(wall_seconds=args.code_timeout, cpu_seconds=math.ceil(args.code_timeout)),
        metadata={"model_spec": args.model, "model_path": path, "method": args.method},
        server=server_backend(_server_settings(args)) if args.backend == "vllm-server" else None,
        shards=args.shards,
        **settings,
    )
    print(f"\nreused {run.reused_requests} answers, computed {run.computed_requests}")
    _print_scores(run.results)
    print(f"\nwritten: {run.output_dir / 'results.json'}")
    if hub is not None:
        _publish(run, hub, token, path)
    return 0


def lm_eval_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The lm_eval flags given, as :func:`tokenpo.evals.evaluate`'s arguments (checked, one line per problem)."""
    from tokenpo.evals.generation import parse_gen_kwargs

    if isinstance(args.apply_chat_template, str):
        raise HarnessError(
            f"--apply-chat-template: a named template ({args.apply_chat_template!r}) is not supported; "
            "the flag alone uses the model's own"
        )
    if args.output and Path(args.output).suffix == ".json":
        raise HarnessError(f"--output: {args.output}: a result folder, not a results file (lm_eval's FILE.json form)")
    return {
        "apply_chat_template": args.apply_chat_template,
        "fewshot_as_multiturn": args.fewshot_as_multiturn,
        "system_instruction": args.system_instruction,
        "gen_kwargs": parse_gen_kwargs(args.gen_kwargs) if args.gen_kwargs is not None else None,
        "predict_only": args.predict_only,
    }


def _hub_upload(args: argparse.Namespace) -> tuple[HubTarget | None, str | None]:
    """Where results go (None: nowhere), and the token to send them with (None: a dry run, or nowhere);
    refused in one line without a token or the hub."""
    from tokenpo.evals.hub import HubTarget, check_hub_access

    if args.hub_results is None:
        if args.dry_run or args.hub_public:
            raise HarnessError(f"--{'dry-run' if args.dry_run else 'hub-public'}: only with --hub-results ORG/NAME")
        return None, None
    target = HubTarget.parse(args.hub_results, public=args.hub_public)
    return target, None if args.dry_run else check_hub_access()


def _publish(run: EvalRun, hub: HubTarget, token: str | None, model: str) -> None:
    """Print the upload's plan, and (with a token: not a dry run) upload it."""
    from tokenpo.evals.hub import describe_plan, hub_plan, upload_results

    plan = hub_plan(run.output_dir, run.lm_eval_layout, model)
    print(describe_plan(plan, hub))
    if token is None:
        print("dry run: nothing uploaded")
        return
    print(f"uploaded: {upload_results(plan, hub, token, model)}")


def _print_scores(results: dict[str, Any]) -> None:
    """Each task's metrics, and what the run's settings did that the numbers do not show."""
    harness = results["harness"]
    if harness["predict_only"]:
        print(f"predict only: answers of {len(results['results'])} tasks in samples/, no metrics")
    else:
        for task, row in results["results"].items():
            scores = ", ".join(
                f"{k.split(',')[0]}[{k.split(',')[1]}]={v:.4f}"
                for k, v in row.items()
                if "," in k and "_stderr" not in k and isinstance(v, int | float)
            )
            print(f"{task:32} {scores}")
    for line in _gen_kwargs_notes(harness["gen_kwargs"]):
        print(line)


def _gen_kwargs_notes(record: dict[str, Any]) -> list[str]:
    """Where the generation arguments asked for were not used as asked: no generative task took them, or a
    suite task kept its own value (both are in results.json; said here so that none goes unnoticed)."""
    from tokenpo.evals.generation import FROM_SUITE_TASK

    if not record["given"] and not record["suite"]:
        return []
    if not record["tasks"]:
        return ["gen_kwargs: not used: none of the tasks generates (they score log-likelihoods)"]
    return [
        f"gen_kwargs: {task} keeps its suite entry's {key}={entry['value']!r} (asked: {entry['instead_of']!r})"
        for task, entries in record["tasks"].items()
        for key, entry in entries.items()
        if entry["from"] == FROM_SUITE_TASK and "instead_of" in entry
    ]


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
