"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).

This module is the page: its header, style and the order of its sections. The sections drawn from
results (leaderboard table, benchmark bars, reward–KL frontier) are in ``report_leaderboard``; those
drawn from training runs (mask sparsity and token weights, training curves, token pictures) are in
``report_training``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from pathlib import Path

from tokenpo.core.files import write_atomic
from tokenpo.leaderboards.board import Leaderboard
from tokenpo.leaderboards.report_leaderboard import (
    benchmark_section,
    frontier_section,
    paths_section,
    table_section,
    verdict_section,
)
from tokenpo.leaderboards.report_training import curves_section, masks_section, tokens_section
from tokenpo.leaderboards.results import Result
from tokenpo.leaderboards.runs import TrainingRun, load_runs
from tokenpo.leaderboards.svg import SVG_STYLE, colours_for
from tokenpo.leaderboards.table import build_leaderboard


def write_report(
    results: Sequence[Result | str | Path],
    runs: Sequence[TrainingRun | str | Path] = (),
    baseline: str = "dpo",
    out: str | Path = "report.html",
    **leaderboard_options,
) -> Path:
    """Build the leaderboard of ``results``, render the report with ``runs``, write it to ``out``.

    ``leaderboard_options`` go to ``build_leaderboard`` (benchmarks, confidence, n_boot, seed).
    """
    board = build_leaderboard(results, baseline=baseline, **leaderboard_options)
    loaded = [r for r in runs if isinstance(r, TrainingRun)] + load_runs(
        [r for r in runs if not isinstance(r, TrainingRun)]
    )
    return write_atomic(out, build_html(board, loaded))


def build_html(board: Leaderboard, runs: Sequence[TrainingRun] = (), base_model: str | None = None) -> str:
    """The page; ``base_model``, when given, is a line under the title naming the base model and where its
    weights came from (a dequantised GGUF is not the original weights)."""
    colours = _method_colours(board)
    verdicts = verdict_section(board)
    sections = [*([verdicts] if verdicts else []), table_section(board, colours), benchmark_section(board, colours)]
    frontier = frontier_section(board)
    if frontier:
        sections.append(frontier)
    paths = paths_section(board)
    if paths:
        sections.append(paths)
    masks = masks_section(runs)
    if masks:
        sections.append(masks)
    curves = curves_section(runs)
    if curves:
        sections.append(curves)
    tokens = tokens_section(runs)
    if tokens:
        sections.append(tokens)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base = f'\n<div class="meta base-model">{escape(base_model)}</div>' if base_model else ""
    return _PAGE.format(
        style=_STYLE, stamp=escape(stamp), baseline=escape(board.baseline), base=base, body="\n".join(sections)
    )


def _method_colours(board: Leaderboard) -> dict[str, str]:
    # Every method of the results, not only leaderboard rows: judge-only ones appear in the frontier.
    methods = list(dict.fromkeys([board.baseline, *(row.method for row in board.rows), *board.tidy["method"]]))
    return colours_for(methods)


_STYLE = (
    """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1b1b;
  max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px} .meta{color:#666}
table.leaderboard{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.leaderboard th,table.leaderboard td{border:1px solid #ddd;padding:4px 8px;vertical-align:top;
  text-align:right}
table.leaderboard th[scope=row],table.leaderboard thead th{text-align:left;background:#f6f6f6}
td .score{display:block;font-weight:600} td .ci{display:block;color:#777;font-size:12px}
td .delta{display:block;font-size:12px} .delta.up{color:#087f23} .delta.down{color:#b00020}
.delta.flat{color:#555}
td.missing{color:#b00020;text-align:center} table.leaderboard td.text{text-align:left}
td.average{background:#fafafa}
.tag{font-size:11px;background:#eee;border-radius:3px;padding:0 4px;margin-left:4px;font-weight:400}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
tr.flagged th,tr.flagged td{background:#fff8e6}
.badge.warn{display:block;margin-top:3px;font-size:11px;font-weight:400;color:#7a4b00;background:#ffefc2;
  border:1px solid #e0b040;border-radius:3px;padding:1px 5px;max-width:28em}
.badge .badgehead{font-weight:600} .badge ul.problems{margin:0;padding-left:14px}
ul.legend,ul.notes{font-size:12px;color:#444;padding-left:18px} ul.notes{color:#7a4b00}
.charts{display:flex;flex-wrap:wrap;gap:12px} .frontier{display:block}
.pair{margin:8px 0 12px;border-left:3px solid #ddd;padding-left:8px}
.pairhead{font-size:12px;color:#555;margin-bottom:2px}
.tokens{font:13px/1.9 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
.tokens .side{display:inline-block;width:70px;color:#777;font:12px system-ui,sans-serif}
.tok{border-radius:2px;padding:1px 0} table.stats{font-size:12px;border-collapse:collapse}
table.stats td,table.stats th{border:1px solid #eee;padding:2px 6px;text-align:left}
table.stats{font-variant-numeric:tabular-nums;margin-top:6px}
"""
    + SVG_STYLE
)

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenpo-harness leaderboard</title>
<style>{style}</style></head>
<body><header><h1>tokenpo-harness leaderboard</h1>
<div class="meta">baseline: {baseline} · generated {stamp}</div>{base}</header>
{body}
</body></html>
"""
