"""``harness leaderboard``: results against the DPO baseline, as markdown, csv, json or HTML."""

from __future__ import annotations

import argparse
import sys

from tokenpo.core.files import write_atomic
from tokenpo.harness.errors import HarnessError
from tokenpo.leaderboards.render import FORMATS, render
from tokenpo.leaderboards.runs import load_runs
from tokenpo.leaderboards.table import build_leaderboard
from tokenpo.leaderboards.verdicts import DEFAULT_MARGIN


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="one row per model/method: headline scores, normalised, with deltas to the baseline",
        description="Read result folders (ours or lm-eval --output_path folders) into a leaderboard. "
        "RESULTS are paths, or METHOD=PATH to name the method of results that carry no 'harness' block.",
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS")
    parser.add_argument("--baseline", default="dpo", help="the method the deltas are against (default: dpo)")
    parser.add_argument("--format", choices=FORMATS, default="md")
    parser.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    parser.add_argument(
        "--tidy",
        action="store_true",
        help="csv/json: the tidy table (model, method, seed, step, task, metric, value, stderr, n)",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="RUN",
        help="html: training run folders for the curves and token pictures",
    )
    parser.add_argument(
        "--catalog",
        metavar="FILE",
        help="a benchmark catalog: the columns and their headline metrics (default: the packaged one)",
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"the verdicts' equivalence margin in the headline metric's units (default {DEFAULT_MARGIN:g}: "
        "five points)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.runs and args.format != "html":
        raise HarnessError("--runs: training runs are drawn by --format html only")
    if args.tidy and args.format not in ("csv", "json"):
        raise HarnessError("--tidy: the tidy table is written as --format csv or json")
    board = build_leaderboard(
        args.results,
        baseline=args.baseline,
        benchmarks=args.catalog,
        confidence=args.confidence,
        n_boot=args.bootstrap,
        seed=args.seed,
        margin=args.margin,
    )
    runs = load_runs(args.runs) if args.runs else []
    text = render(board, args.format, tidy=args.tidy, runs=runs)
    if args.out:
        write_atomic(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
