"""The tidy table: every number the results report, one line per run, task and metric (``harness
leaderboard --tidy``), checkpoints included: what the leaderboard is built from and keeps."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from tokenpo.leaderboards.results import Result

TIDY_COLUMNS = ["model", "method", "seed", "step", "task", "metric", "value", "stderr", "n", "source"]


def tidy_table(results: Iterable[Result]) -> pd.DataFrame:
    """One line per run, task and metric: model, method, seed, step (a checkpoint's; empty for a final
    model), task, metric, value, stderr, n, source."""
    records = [
        {
            "model": r.model,
            "method": r.method,
            "seed": r.seed,
            "step": r.checkpoint_step,
            "task": task,
            "metric": metric,
            "value": v.value,
            "stderr": v.stderr,
            "n": v.n,
            "source": r.source,
        }
        for r in results
        for (task, metric), v in sorted(r.metrics.items())
    ]
    frame = pd.DataFrame.from_records(records, columns=TIDY_COLUMNS)
    return frame.astype({"seed": "Int64", "step": "Int64", "n": "Int64"})
