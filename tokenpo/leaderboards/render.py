"""Render a leaderboard as markdown, csv, json or the HTML report."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokenpo.leaderboards.board import Cell, Leaderboard, Row
from tokenpo.leaderboards.columns import Benchmark
from tokenpo.leaderboards.formatting import (
    NORMALISATION,
    VERDICT_HEAD,
    fmt_delta_verdict,
    fmt_score,
    legend_lines,
    method_label,
    seeds_text,
    smoke_lines,
    verdict_intro,
    verdict_rows,
)
from tokenpo.leaderboards.health import MARKER
from tokenpo.leaderboards.report import build_html

FORMATS = ("md", "html", "csv", "json")


def render(board: Leaderboard, fmt: str, tidy: bool = False, runs: Sequence = ()) -> str:
    if fmt == "md":
        return markdown(board)
    if fmt == "csv":
        return (board.tidy if tidy else board.frame()).to_csv(index=False)
    if fmt == "json":
        return as_json(board, tidy)
    if fmt == "html":
        return build_html(board, runs)
    raise ValueError(f"unknown format {fmt!r}")


def as_json(board: Leaderboard, tidy: bool = False) -> str:
    frame = board.tidy if tidy else board.frame()
    records = json.loads(frame.to_json(orient="records"))
    if tidy:
        return json.dumps(records, indent=1) + "\n"
    flags = {(row.model, row.method): row.health_records() for row in board.rows}
    for record in records:  # csv has the flags as text; json as objects
        record["health_flags"] = flags[(record["model"], record["method"])]
    document = {
        "baseline": board.baseline,
        "confidence": board.confidence,
        "normalisation": NORMALISATION,
        "benchmarks": [
            {
                "name": b.name,
                "label": b.label,
                "metrics": list(b.metrics),
                "random": b.random,
                "average": b.average,
                "note": b.note,
            }
            for b in board.benchmarks
        ],
        "rows": records,
        "margin": board.margin,
        "verdicts": [v.record() | {"method": v.method} for v in board.verdicts],
        "smoke_checks": [check.record() for check in board.smoke],
        "notes": board.notes,
    }
    return json.dumps(document, indent=1) + "\n"


def cell_of(row: Row, name: str) -> Cell | None:
    return row.cells.get(name)


def absent(row: Row, benchmark: Benchmark) -> str:
    """What a row without a score in ``benchmark``'s column shows: the baseline is a win rate's reference."""
    return "reference" if row.is_baseline and benchmark.versus_baseline else "missing"


def markdown(board: Leaderboard) -> str:
    """The verdicts at matched KL first (the comparison a run can make), then the table, Δ, raw values."""
    columns = board.benchmarks
    out = []
    if board.verdicts:
        out += [
            f"## Verdicts at matched KL (baseline: {board.baseline})",
            "",
            verdict_intro(board),
            "",
            _md_row(VERDICT_HEAD),
            _md_row(["---"] * len(VERDICT_HEAD)),
        ]
        out += [_md_row(cells) for cells in verdict_rows(board)]
        out.append("")
    average = ["average"] if board.has_average else []
    head = ["method", "model", "seeds", *[b.label for b in columns], *average]
    out += [f"## Leaderboard (baseline: {board.baseline})", "", _md_row(head), _md_row(["---"] * len(head))]
    for row in board.rows:
        cells = [fmt_score(c.score, c.score_sd) if (c := cell_of(row, b.name)) else absent(row, b) for b in columns]
        out.append(
            _md_row(
                [
                    _method(row, board),
                    row.model,
                    seeds_text(row),
                    *cells,
                    *([fmt_score(row.average, row.average_sd)] if average else []),
                ]
            )
        )
    if any(row.is_baseline for row in board.rows) and columns:
        baseline_flagged = any(r.baseline_flagged for r in board.rows)
        flagged = f" — {MARKER} the baseline's training was flagged" if baseline_flagged else ""
        out += ["", f"### Δ vs {board.baseline} (normalised points, {board.confidence * 100:g}% CI){flagged}", ""]
        out += [
            _md_row(["method", "model", *[b.label for b in columns], *average, "intervals cover"]),
            _md_row(["---"] * (len(columns) + len(average) + 3)),
        ]
        for row in board.rows:
            if row.is_baseline:
                continue
            cells = [
                fmt_delta_verdict(c.delta, board.cell_verdict(row, c.delta, b.random))
                if (c := cell_of(row, b.name))
                else "missing"
                for b in columns
            ]
            mean = [fmt_delta_verdict(row.average_delta, board.cell_verdict(row, row.average_delta, None))]
            covers = sorted({c.delta.covers for c in row.cells.values() if c.delta is not None})
            out.append(
                _md_row([method_label(row), row.model, *cells, *(mean if average else []), "; ".join(covers) or "—"])
            )
    if columns:
        out += ["", "### Headline metrics, raw (mean over seeds)", ""]
        out += [
            _md_row(["method", "model", *[f"{b.label} ({'+'.join(b.metrics)})" for b in columns]]),
            _md_row(["---"] * (len(columns) + 2)),
        ]
        for row in board.rows:
            cells = [f"{c.raw:.4f}" if (c := cell_of(row, b.name)) else absent(row, b) for b in columns]
            out.append(_md_row([method_label(row), row.model, *cells]))
    out += ["", *[f"- {line}" for line in legend_lines(board)]]
    if board.smoke:
        out += ["", "Smoke checks (run on too few items for an interval; in the tidy table, not compared):", ""]
        out += [f"- {line}" for line in smoke_lines(board)]
    if board.notes:
        out += ["", "Notes:", "", *[f"- {note}" for note in board.notes]]
    return "\n".join(out) + "\n"


def _method(row: Row, board: Leaderboard) -> str:
    return f"{method_label(row)} (baseline)" if row.is_baseline else method_label(row)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
