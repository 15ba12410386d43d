"""``harness regress``: the CI gate on benchmark scores (exit 0 pass, 1 regression, 2 bad input)."""

from __future__ import annotations

import argparse

from tokenpo.harness.errors import HarnessError
from tokenpo.leaderboards.regress import compare, format_report
from tokenpo.leaderboards.results import load_single


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "regress",
        help="fail (exit 1) when a candidate's scores dropped significantly against a baseline",
        description="Per task metric, a paired z-test on per-item scores (the reported stderr when a "
        "result has no samples); exit 0 when nothing dropped significantly by more than --max-drop, "
        "1 when something did, 2 on bad input.",
    )
    parser.add_argument("--baseline", metavar="FILE", help="results.json or a result folder")
    parser.add_argument("--candidate", required=True, metavar="FILE", help="results.json or a result folder")
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.0,
        metavar="X",
        help="tolerated drop in points (0.01 of the metric; default 0)",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--tasks", metavar="T1,T2", help="only these tasks (default: every top-level task)")
    parser.add_argument("--all-tasks", action="store_true", help="also test the subtasks of groups")
    parser.add_argument(
        "--freeze",
        metavar="DIR",
        help="instead of testing, write the candidate's scores (no benchmark text) to DIR as the next baseline",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.freeze:
        from tokenpo.leaderboards.freeze import freeze_result

        print(f"baseline written: {freeze_result(args.candidate, args.freeze)}")
        return 0
    if not args.baseline:
        raise HarnessError("--baseline: required (or --freeze DIR to write one)")
    report = compare(
        load_single(args.baseline),
        load_single(args.candidate),
        max_drop=args.max_drop,
        alpha=args.alpha,
        tasks=args.tasks.split(",") if args.tasks else None,
        all_tasks=args.all_tasks,
    )
    print(format_report(report))
    return report.exit_code
