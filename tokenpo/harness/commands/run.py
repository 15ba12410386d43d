"""``harness run CONFIG [key=value ...]``: the train-then-evaluate pipeline, end to end."""

from __future__ import annotations

import argparse

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
    parser.set_defaults(run=_run, display=_run_display)


def _run_display():
    from tokenpo.harness.pipeline.progress import RunProgress

    return RunProgress()


def _run(args: argparse.Namespace) -> int:
    from tokenpo.harness.pipeline.config import RunConfig
    from tokenpo.harness.pipeline.run import run_pipeline

    config = load_config(RunConfig, args.config, args.overrides)
    result = run_pipeline(config, args.config)
    print(result.leaderboard)
    for note in result.notes:
        print(f"note: {note}")
    print(f"\noutput:      {result.output}")
    if result.report is not None:
        print(f"report:      {result.report}")
    print(f"leaderboard: {result.output / 'leaderboard.md'}")
    return 0
