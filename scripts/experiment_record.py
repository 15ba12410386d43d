"""An experiment's committed record from its `harness run` output: the verdicts, the paths, the health, the time.

    python scripts/experiment_record.py runs/imdb-matched-kl --wall-seconds 6240 > docs/experiments/imdb-matched-kl.json

Everything but the wall time comes from the run's own files (summary.json, train/*/health.json), so the
record and the run cannot disagree. The wall time is measured outside the run (e.g. /usr/bin/time), because a
run resumed after an interruption has no single start; without it, the stages' own seconds are summed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VERDICT_KEYS = ("kl", "path_kl", "reward", "baseline_reward", "delta", "low", "high", "covers", "seeds",
                "steps", "margin", "verdict", "reason")


def record(output: Path, wall_seconds: float | None) -> dict:
    summary_file = output / "summary.json"
    if not summary_file.is_file():
        raise SystemExit(f"error: {summary_file}: not found (is {output} a finished harness run output?)")
    summary = json.loads(summary_file.read_text())
    health = {}
    for marker in sorted(output.glob("train/*/health.json")):
        report = json.loads(marker.read_text())
        health[marker.parent.name] = {key: report.get(key) for key in ("flags", "effective_beta", "anchor_coverage")}
    stage_seconds = {name: seconds for name, seconds in summary["seconds"].items() if seconds is not None}
    return {
        "run": summary["run"],
        "model": summary["model"],
        "baseline": next((v["baseline"] for v in summary["verdicts"].values()), None),
        "verdicts": {method: {key: v.get(key) for key in VERDICT_KEYS} for method, v in summary["verdicts"].items()},
        "paths": summary["paths"],
        "health": health,
        "wall_seconds": round(wall_seconds if wall_seconds is not None else sum(stage_seconds.values()), 1),
        "wall_seconds_measured": wall_seconds is not None,
        "stage_seconds": stage_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the harness run output folder (holds summary.json)")
    parser.add_argument("--wall-seconds", type=float, help="the run's measured wall time; default: the stages' sum")
    args = parser.parse_args(argv)
    json.dump(record(args.output, args.wall_seconds), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
