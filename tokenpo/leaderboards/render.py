"""Render a leaderboard as markdown, csv, json or the HTML report."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from tokenpo.leaderboards.health import MARKER
from tokenpo.leaderboards.stats import MIN_ITEMS_FOR_INTERVAL
from tokenpo.leaderboards.table import Cell, Estimate, Leaderboard, Row

FORMATS = ("md", "html", "csv", "json")
NORMALISATION = "max(0, (v − random) / (1 − random)) · 100"


def render(board: Leaderboard, fmt: str, tidy: bool = False, runs: Sequence = ()) -> str:
    if fmt == "md":
        return markdown(board)
    if fmt == "csv":
        return (board.tidy if tidy else board.frame()).to_csv(index=False)
    if fmt == "json":
        return as_json(board, tidy)
    if fmt == "html":
        from tokenpo.leaderboards.report import build_html

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
        "notes": board.notes,
    }
    return json.dumps(document, indent=1) + "\n"


def fmt_score(estimate: Estimate | None, sd: float | None = None) -> str:
    if estimate is None or math.isnan(estimate.value):
        return "—"
    return f"{estimate.value:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def fmt_delta(estimate: Estimate | None) -> str:
    """``+1.2 [+0.3, +2.1]*`` (``*``: significant), or without an interval ``+1.2 (no interval: WHY)``."""
    if estimate is None:
        return "—"
    if not estimate.has_interval:
        why = fmt_no_interval(estimate)
        return f"{estimate.value:+.1f}" + (f" ({why})" if why else "")
    mark = "*" if estimate.significant else ""
    return f"{estimate.value:+.1f} [{estimate.low:+.1f}, {estimate.high:+.1f}]{mark}"


def fmt_interval(estimate: Estimate | None) -> str:
    """``[low, high]``, or why there is no interval (``—`` when nothing says why)."""
    if estimate is None:
        return "—"
    if not estimate.has_interval:
        return fmt_no_interval(estimate) or "—"
    return f"[{estimate.low:.1f}, {estimate.high:.1f}]"


def fmt_no_interval(estimate: Estimate) -> str:
    """``no interval: WHY`` for an estimate whose items cannot support one; empty if it has one."""
    return f"no interval: {estimate.no_interval}" if estimate.no_interval else ""


def seeds_text(row: Row) -> str:
    seeds = [s for s in row.seeds if s is not None]
    return ",".join(map(str, seeds)) if seeds else "—"


def cell_of(row: Row, name: str) -> Cell | None:
    return row.cells.get(name)


def legend_lines(board: Leaderboard) -> list[str]:
    level = f"{board.confidence * 100:g}%"
    lines = [
        f"Scores are normalised as the Open LLM Leaderboard v2: {NORMALISATION} (clipped at 0); "
        "with several seeds, mean ± sd over seeds.",
        f"Δ is the difference to the `{board.baseline}` row in normalised points with its {level} paired "
        "bootstrap interval over the items both share (`*`: the interval excludes 0); "
        "an interval from reported stderrs is said so in the notes.",
        f"No interval and no `*` where the items cannot support one: fewer than {MIN_ITEMS_FOR_INTERVAL} "
        "items, or no variation across them (every item scored alike; for Δ, every shared item moved "
        "alike); the average has one only if every benchmark in it does. The cell says why instead.",
    ]
    if any(row.flagged for row in board.rows):
        lines.append(
            f"{MARKER} marks a method whose training was flagged (it did not train): listed after the ranked "
            "rows of its model, not ranked; the notes say which run, metric and value."
        )
    lines += [b.note for b in board.benchmarks if b.note]
    return lines


def markdown(board: Leaderboard) -> str:
    columns = board.benchmarks
    head = ["method", "model", "seeds", *[b.label for b in columns], "average"]
    out = [f"## Leaderboard (baseline: {board.baseline})", "", _md_row(head), _md_row(["---"] * len(head))]
    for row in board.rows:
        cells = [
            fmt_score(c.score, c.score_sd) if (c := cell_of(row, b.name)) else "missing" for b in columns
        ]
        out.append(
            _md_row(
                [
                    _method(row, board),
                    row.model,
                    seeds_text(row),
                    *cells,
                    fmt_score(row.average, row.average_sd),
                ]
            )
        )
    if any(row.is_baseline for row in board.rows):
        flagged = " — " + MARKER + " the baseline did not train" if any(r.baseline_flagged for r in board.rows) else ""
        out += ["", f"### Δ vs {board.baseline} (normalised points, {board.confidence * 100:g}% CI){flagged}", ""]
        out += [
            _md_row(["method", "model", *[b.label for b in columns], "average"]),
            _md_row(["---"] * (len(columns) + 3)),
        ]
        for row in board.rows:
            if row.is_baseline:
                continue
            cells = [fmt_delta(c.delta) if (c := cell_of(row, b.name)) else "missing" for b in columns]
            out.append(_md_row([method_label(row), row.model, *cells, fmt_delta(row.average_delta)]))
    out += ["", "### Headline metrics, raw (mean over seeds)", ""]
    out += [
        _md_row(["method", "model", *[f"{b.label} ({'+'.join(b.metrics)})" for b in columns]]),
        _md_row(["---"] * (len(columns) + 2)),
    ]
    for row in board.rows:
        cells = [f"{c.raw:.4f}" if (c := cell_of(row, b.name)) else "missing" for b in columns]
        out.append(_md_row([method_label(row), row.model, *cells]))
    out += ["", *[f"- {line}" for line in legend_lines(board)]]
    if board.notes:
        out += ["", "Notes:", "", *[f"- {note}" for note in board.notes]]
    return "\n".join(out) + "\n"


def method_label(row: Row) -> str:
    """The method, with the marker ``⚠ `` before it when its training was flagged."""
    return f"{MARKER} {row.method}" if row.flagged else row.method


def _method(row: Row, board: Leaderboard) -> str:
    return f"{method_label(row)} (baseline)" if row.is_baseline else method_label(row)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
