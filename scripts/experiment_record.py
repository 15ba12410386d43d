"""An experiment's committed record from its `harness run` output: the verdicts, the paths, the health, the time.

    python scripts/experiment_record.py runs/imdb-matched-kl --wall-seconds 6240 > docs/experiments/imdb-matched-kl.json

Everything but the wall time comes from the run's own files (summary.json, train/*/health.json, the result
folders), so the record and the run cannot disagree: ``verdicts`` are the run's own (the primary endpoint, the
judge's headline metric), ``secondary`` the same comparisons read on ``--secondary`` (default the mean
P(positive), ``p_positive``) along the same paths, with the same margin, flags and bootstrap. The wall
time is measured outside the run (e.g. /usr/bin/time), because a run resumed after an interruption has no
single start; without it, the stages' own seconds are summed (a checkpoint's evaluation is part of its run's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokenpo.leaderboards.discover import result_files
from tokenpo.leaderboards.table import build_leaderboard

VERDICT_KEYS = (
    "metric",
    "kl",
    "path_kl",
    "reward",
    "baseline_reward",
    "delta",
    "low",
    "high",
    "covers",
    "seeds",
    "steps",
    "margin",
    "verdict",
    "reason",
)


def record(output: Path, wall_seconds: float | None, secondary: str = "p_positive,none") -> dict:
    summary_file = output / "summary.json"
    if not summary_file.is_file():
        raise SystemExit(f"error: {summary_file}: not found (is {output} a finished harness run output?)")
    summary = json.loads(summary_file.read_text())
    health = {}
    for marker in sorted(output.glob("train/*/health.json")):
        report = json.loads(marker.read_text())
        health[marker.parent.name] = {key: report.get(key) for key in ("flags", "effective_beta", "anchor_coverage")}
    verdicts = summary["verdicts"]
    baseline = next((v["baseline"] for v in verdicts.values()), None)
    margin = next((v["margin"] for v in verdicts.values()), None)
    second = []
    if baseline is not None:
        board = build_leaderboard(result_files(output / "eval"), baseline=baseline, margin=margin)
        second = board.verdicts_on(secondary)
    stage_seconds = {name: seconds for name, seconds in summary["seconds"].items() if seconds is not None}
    return {
        "run": summary["run"],
        "model": summary["model"],
        "baseline": baseline,
        "verdicts": {method: {key: v.get(key) for key in VERDICT_KEYS} for method, v in verdicts.items()},
        "secondary": {v.method: {key: v.record().get(key) for key in VERDICT_KEYS} for v in second},
        "paths": summary["paths"],
        "health": health,
        "wall_seconds": round(
            wall_seconds
            if wall_seconds is not None
            else sum(
                seconds
                for name, seconds in stage_seconds.items()
                if "/steps/" not in name  # inside their run's stage
            ),
            1,
        ),
        "wall_seconds_measured": wall_seconds is not None,
        "stage_seconds": stage_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the harness run output folder (holds summary.json)")
    parser.add_argument("--wall-seconds", type=float, help="the run's measured wall time; default: the stages' sum")
    parser.add_argument("--secondary", default="p_positive,none", help="the secondary endpoint's METRIC,FILTER")
    args = parser.parse_args(argv)
    json.dump(record(args.output, args.wall_seconds, args.secondary), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
