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
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stage", help="run only this stage (data, train/NAME-seedS, eval/LABEL, report), as a job "
                       "of the slurm executor does")
    which.add_argument("--status", action="store_true", help="each stage's state (slurm: queued, running, done, "
                       "failed with its log's last lines) and exit")
    parser.add_argument("--wait", action="store_true", help="slurm: after submitting, wait until every stage has "
                        "finished or one has failed")
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
    if args.status or config.executor.kind == "slurm":
        return _scheduled(pipeline, args)
    result = pipeline.run()
    print(result.leaderboard)
    for note in result.notes:
        print(f"note: {note}")
    print(f"\noutput:      {result.output}")
    if result.report is not None:
        print(f"report:      {result.report}")
    print(f"leaderboard: {result.output / 'leaderboard.md'}")
    return 0


def _scheduled(pipeline, args: argparse.Namespace) -> int:
    """The slurm executor: submit what is missing (or only show the state), and optionally wait."""
    import time

    from tokenpo.harness.pipeline import slurm

    if not args.status:
        pipeline.start()
        print(slurm.describe(slurm.submit(pipeline, pipeline.config.executor.slurm)), flush=True)
        if not args.wait:
            print(f"\nstate: harness run {args.config} --status")
            return 0
    while True:
        states = slurm.status(pipeline)
        if args.status or all(s.state in ("done", "failed", "not submitted") for s in states):
            break
        time.sleep(5)
    width = max(len(s.stage) for s in states)
    for s in states:
        print(f"{s.stage:{width}}  {s.state:13}  {s.job or '-':>10}  {s.detail}".rstrip())
    failed = [s for s in states if s.state == "failed"]
    return 1 if failed or (args.wait and any(s.state != "done" for s in states)) else 0
