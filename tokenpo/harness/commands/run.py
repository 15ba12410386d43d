"""``harness run CONFIG [key=value ...]``: the train-then-evaluate pipeline, end to end."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from tokenpo.core.config import load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="prepare data, train each method, evaluate every model, write the leaderboard and report",
        description="Run the pipeline of the YAML CONFIG (see configs/quickstart.yaml); re-running continues "
        "where a killed run stopped and skips finished stages.",
    )
    parser.add_argument("config", help="pipeline YAML: name, model, data, methods, training, eval, report")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a key, e.g. eval.suite=null")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--stage",
        help="run only this stage (data, benchmark-data, train/NAME-seedS, eval/LABEL, answers/LABEL, winrate/LABEL, "
        "report), as a job of the slurm executor does",
    )
    which.add_argument(
        "--status",
        action="store_true",
        help="each stage's state (slurm: queued, running, done, failed with its log's last lines) and exit",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="slurm: after submitting, wait until every stage has finished or one has failed",
    )
    parser.set_defaults(run=_run, display=_run_display)


def _run_display():
    from tokenpo.harness.pipeline.progress import RunProgress

    return RunProgress()


def _run(args: argparse.Namespace) -> int:
    from tokenpo.harness.pipeline.config import RunConfig
    from tokenpo.harness.pipeline.run import Pipeline

    config = load_config(RunConfig, args.config, args.overrides)
    pipeline = Pipeline(config, args.config)
    if args.stage:
        pipeline.start()
        pipeline.run_stage(args.stage)
        return 0
    if args.status:
        return _show_status(pipeline)
    if config.executor.kind == "slurm":
        return _scheduled(pipeline, args)
    result = pipeline.run()
    print(result.leaderboard)
    for note in result.notes:
        print(f"note: {note}")
    print(f"\noutput:      {result.output}")
    if result.report is not None:
        print(f"report:      {result.report}")
    print(f"leaderboard: {result.output / 'leaderboard.md'}")
    print(next_steps(pipeline, args.config, args.overrides))
    return 0


def _scheduled(pipeline, args: argparse.Namespace) -> int:
    """The slurm executor: submit what is missing, and optionally wait until every stage has ended."""
    import time

    from tokenpo.harness.pipeline import slurm

    pipeline.start()
    print(slurm.describe(slurm.submit(pipeline, pipeline.config.executor.slurm)), flush=True)
    if not args.wait:
        print(f"\nstate: harness run {args.config} --status")
        return 0
    while not all(s.state in ("done", "failed", "not submitted") for s in slurm.status(pipeline)):
        time.sleep(5)
    return _show_status(pipeline, wanted_done=True)


def _show_status(pipeline, wanted_done: bool = False) -> int:
    """Each stage's state, from the stage markers (and, with Slurm, the queue); 1 when one failed (or, when
    waiting for the end, one did not finish)."""
    from tokenpo.harness.pipeline import local, slurm

    states = (slurm if pipeline.config.executor.kind == "slurm" else local).status(pipeline)
    width, jobs = max(len(s.stage) for s in states), any(s.job for s in states)
    for s in states:
        job = f"  {s.job or '-':>10}" if jobs else ""  # Slurm's job ids; a local run has none
        print(f"{s.stage:{width}}  {s.state:13}{job}  {s.detail}".rstrip())
    failed = any(s.state == "failed" for s in states)
    return 1 if failed or (wanted_done and any(s.state != "done" for s in states)) else 0


def next_steps(pipeline, config: str, overrides: list[str]) -> str:
    """What to try next, each command as it works when pasted into this shell (see :func:`harness_command`)."""
    output = pipeline.config.output
    harness = harness_command()
    baseline_runs = sorted((Path(output) / "train").glob(f"{pipeline.config.report.baseline}-seed*/final"))
    lines = [
        f"{harness} leaderboard {shlex.quote(output)} --baseline {pipeline.config.report.baseline}",
        f"{harness} run {shlex.join([config, *overrides])} --status",
    ]
    if baseline_runs and pipeline.benchmark_data() is not None:
        lines.insert(1, f"{harness} eval --model {shlex.quote(str(baseline_runs[0]))} --tasks gsm8k --limit 2")
    if baseline_runs:
        lines.append(f"{harness} push {shlex.quote(str(baseline_runs[0].parent))} --repo ORG/NAME --dry-run")
    activate = Path(harness).parent / "activate"
    heading = "\nnext:"
    if harness != "harness" and " " not in harness and activate.is_file():
        heading += f" (`source {activate}` puts `harness` on your PATH)"
    return "\n".join([heading, *(f"  {line}" for line in lines)])


def harness_command() -> str:
    """How to call this harness again from the current folder: its path relative to here when it lives below
    (``.tox/quickstart/bin/harness``: tox's environment is not on the user's PATH once tox is done), plain
    ``harness`` when that name finds this one, else its absolute path; ``python -m tokenpo`` likewise."""
    if Path(sys.argv[0]).name == "__main__.py":
        return f"{_shown(sys.executable, 'python')} -m tokenpo"
    return _shown(sys.argv[0], "harness")


def _shown(program: str, name: str) -> str:
    path = Path(os.path.abspath(program))
    if path.is_relative_to(Path.cwd()):
        relative = str(path.relative_to(Path.cwd()))
        return relative if "/" in relative else f"./{relative}"
    found = shutil.which(name)
    if found is not None and Path(os.path.abspath(found)) == path:
        return name
    return shlex.quote(str(path))
