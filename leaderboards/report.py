"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).

Sections: the leaderboard table with intervals and deltas, one bar chart per benchmark, the
reward–KL frontier of sentiment runs, training curves from ``metrics.jsonl``, and token
pictures from ``token_scores.jsonl`` (each token shaded by its SparsePO mask or TI-DPO weight).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import tempfile
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from leaderboards.registry import Benchmark
from leaderboards.render import fmt_delta, fmt_interval, fmt_score, legend_lines, seeds_text
from leaderboards.results import Result
from leaderboards.runs import TokenScores, TrainingRun, load_runs
from leaderboards.svg import PALETTE, bar_chart, line_chart, scatter_chart
from leaderboards.table import Leaderboard, build_leaderboard

# Sentiment control (SparsePO's IMDB experiment): a task with both metrics is plotted as a point.
REWARD_METRIC = "positive_rate,none"
KL_METRIC = "kl_to_ref,none"
# Training curves shown first, in this order, when logged; then the method-specific families.
CURVES = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "grad_norm")
CURVE_FAMILIES = ("kl/", "mask/", "weights/")
MAX_CURVES = 12
TOKEN_EXAMPLES = 3
SCORE_COLOURS = {"mask_u": (0, 114, 178), "mask_d": (213, 94, 0), "weight": (0, 158, 115)}
# Byte-level BPE shows bytes as printable characters (GPT-2's table); tokens carrying these
# markers are turned back into text for display.
_BYTE_LEVEL_MARKERS = ("Ġ", "Ċ", "ĉ")


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
    return write_atomically(out, build_html(board, loaded))


def write_atomically(path: str | Path, text: str) -> Path:
    """Write through a temporary file in the same folder, then rename: no half-written report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def build_html(board: Leaderboard, runs: Sequence[TrainingRun] = ()) -> str:
    colours = _method_colours(board)
    sections = [_table_section(board, colours), _benchmark_section(board, colours)]
    frontier = _frontier_section(board, colours)
    if frontier:
        sections.append(frontier)
    curves = _curves_section(runs)
    if curves:
        sections.append(curves)
    tokens = _tokens_section(runs)
    if tokens:
        sections.append(tokens)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _PAGE.format(
        style=_STYLE, stamp=escape(stamp), baseline=escape(board.baseline), body="\n".join(sections)
    )


def _method_colours(board: Leaderboard) -> dict[str, str]:
    # Every method of the results, not only leaderboard rows: judge-only ones appear in the frontier.
    methods = list(
        dict.fromkeys([board.baseline, *(row.method for row in board.rows), *board.tidy["method"]])
    )
    return {method: PALETTE[i % len(PALETTE)] for i, method in enumerate(methods)}


# --- leaderboard table -------------------------------------------------------------------------
def _table_section(board: Leaderboard, colours: dict[str, str]) -> str:
    head = "".join(f"<th>{escape(b.label)}</th>" for b in board.benchmarks)
    body = []
    for row in board.rows:
        cells = []
        for b in board.benchmarks:
            cell = row.cells.get(b.name)
            if cell is None:
                cells.append('<td class="missing">missing</td>')
                continue
            cells.append(
                _score_cell(
                    cell.score, cell.score_sd, cell.delta, f"{b.label}: {cell.task}, n={cell.n}", raw=cell.raw
                )
            )
        cells.append(_score_cell(row.average, row.average_sd, row.average_delta, "average", extra="average"))
        name = escape(row.method) + (' <span class="tag">baseline</span>' if row.is_baseline else "")
        swatch = f'<span class="swatch" style="background:{colours[row.method]}"></span>'
        body.append(
            f'<tr><th scope="row">{swatch}{name}</th><td class="text">{escape(row.model)}</td>'
            f'<td class="text">{escape(seeds_text(row))}</td>{"".join(cells)}</tr>'
        )
    legend = "".join(f"<li>{escape(line)}</li>" for line in legend_lines(board))
    notes = "".join(f"<li>{escape(note)}</li>" for note in board.notes)
    notes_block = f'<h3>Notes</h3><ul class="notes">{notes}</ul>' if notes else ""
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        f'<table class="leaderboard"><thead><tr><th>method</th><th>model</th><th>seeds</th>{head}'
        f"<th>average</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<ul class="legend">{legend}</ul>{notes_block}</section>'
    )


def _score_cell(score, sd, delta, title: str, extra: str = "", raw: float | None = None) -> str:
    """Normalised score (± sd over seeds), its interval, the raw headline value, the Δ to baseline."""
    if score is None:
        return f'<td class="missing {extra}">—</td>'
    parts = [
        f'<span class="score">{escape(fmt_score(score, sd))}</span>',
        f'<span class="ci">{escape(fmt_interval(score))}</span>',
    ]
    if raw is not None:
        parts.append(f'<span class="ci">raw {raw:.4f}</span>')
    if delta is not None:
        kind = "up" if delta.significant and delta.value > 0 else "down" if delta.significant else "flat"
        parts.append(f'<span class="delta {kind}">Δ {escape(fmt_delta(delta))}</span>')
    return f'<td class="{extra}" title="{escape(title)}">{"".join(parts)}</td>'


# --- per-benchmark bars --------------------------------------------------------------------------
def _benchmark_section(board: Leaderboard, colours: dict[str, str]) -> str:
    level = f"{board.confidence * 100:g}%"
    charts = []
    for benchmark in [*board.benchmarks, None]:
        rows = [r for r in board.rows if (r.cells.get(benchmark.name) if benchmark else r.average)]
        if not rows:
            continue
        estimates = [r.cells[benchmark.name].score if benchmark else r.average for r in rows]
        charts.append(
            bar_chart(
                title=_chart_title(benchmark),
                labels=[r.method for r in rows],
                values=[e.value for e in estimates],
                intervals=[(e.low, e.high) if e.how != "none" else None for e in estimates],
                colors=[colours[r.method] for r in rows],
                y_label="normalised score",
            )
        )
    return (
        f'<section id="benchmarks"><h2>Benchmarks</h2><p>Normalised headline score per method; whiskers are '
        f"{level} intervals (bootstrap over items, or the reported stderr).</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def _chart_title(benchmark: Benchmark | None) -> str:
    return (
        "Average"
        if benchmark is None
        else f"{benchmark.label} ({'+'.join(m.split(',')[0] for m in benchmark.metrics)})"
    )


# --- reward–KL frontier ------------------------------------------------------------------------
def _frontier_section(board: Leaderboard, colours: dict[str, str]) -> str | None:
    tidy = board.tidy
    wanted = tidy[tidy["metric"].isin([REWARD_METRIC, KL_METRIC])]
    if wanted.empty:
        return None
    # Seeds become text so that runs without a seed are not dropped as missing group keys.
    wanted = wanted.assign(seed=wanted["seed"].astype("string").fillna(""))
    wide = wanted.pivot_table(
        index=["model", "method", "seed", "task"], columns="metric", values="value", aggfunc="first"
    ).reset_index()
    if REWARD_METRIC not in wide or KL_METRIC not in wide:
        return None
    wide = wide.dropna(subset=[REWARD_METRIC, KL_METRIC])
    if wide.empty:
        return None
    charts = []
    for task, group in wide.groupby("task"):
        points, lines = [], []
        for method, runs in group.groupby("method"):
            colour = colours[method]
            for _, run in runs.iterrows():
                seed = f" seed {run['seed']}" if run["seed"] else ""
                points.append((f"{method}{seed}", float(run[KL_METRIC]), float(run[REWARD_METRIC]), colour))
            pairs = list(zip(runs[KL_METRIC].astype(float), runs[REWARD_METRIC].astype(float), strict=True))
            lines.append((method, pareto_front(pairs), colour))
        charts.append(
            scatter_chart(f"{task}: reward vs KL", points, lines, "KL to reference (nats)", "positive rate")
        )
    return (
        '<section id="frontier"><h2>Reward–KL frontier</h2><p>Sentiment control: positive rate of '
        "the judge against the sequence KL to the reference; dashed lines join each method's "
        "Pareto-optimal runs (higher reward at lower KL).</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both counts (lower KL ``x`` and higher reward ``y``)."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


# --- training curves ---------------------------------------------------------------------------
def _curves_section(runs: Sequence[TrainingRun]) -> str | None:
    with_metrics = [run for run in runs if not run.metrics.empty and "step" in run.metrics]
    if not with_metrics:
        return None
    logged = list(dict.fromkeys(c for run in with_metrics for c in run.metrics.columns))
    keys = [k for k in CURVES if k in logged]
    keys += [k for k in logged if k.startswith(CURVE_FAMILIES) and k not in keys]
    colours = {run.name: PALETTE[i % len(PALETTE)] for i, run in enumerate(with_metrics)}
    charts = []
    for key in keys[:MAX_CURVES]:
        series = []
        for run in with_metrics:
            frame = run.metrics[["step", key]].dropna() if key in run.metrics else None
            if frame is not None and not frame.empty:
                series.append((run.name, frame["step"].tolist(), frame[key].tolist(), colours[run.name]))
        if series:
            charts.append(line_chart(key, series, "step", key))
    skipped = len(keys) - MAX_CURVES
    more = f"<p>{skipped} more logged metrics are in the runs' metrics.jsonl.</p>" if skipped > 0 else ""
    names = ", ".join(
        f"{escape(run.name)} ({escape(run.method or 'method not recorded')})" for run in with_metrics
    )
    return (
        f'<section id="training"><h2>Training curves</h2><p>Runs: {names}.</p>'
        f'<div class="charts">{"".join(charts)}</div>{more}</section>'
    )


# --- token pictures ----------------------------------------------------------------------------
def _tokens_section(runs: Sequence[TrainingRun]) -> str | None:
    blocks = []
    for run in runs:
        if not run.token_scores:
            continue
        examples = list(dict.fromkeys(row.example for row in run.token_scores))[:TOKEN_EXAMPLES]
        kinds = list(dict.fromkeys(kind for row in run.token_scores for kind in row.scores))
        parts = [f"<h3>{escape(run.name)}</h3>", _score_stats(run.token_scores, kinds)]
        for example in examples:
            rows = [row for row in run.token_scores if row.example == example]
            for kind in kinds:
                scale = max(
                    (max(row.scores[kind], default=0.0) for row in rows if kind in row.scores), default=0.0
                )
                lines = [
                    _token_line(row, kind, scale)
                    for row in sorted(rows, key=lambda r: r.side)
                    if kind in row.scores
                ]
                parts.append(
                    f'<div class="pair"><div class="pairhead">example {example} · {escape(kind)} '
                    f"(darkest = {scale:.3g})</div>{''.join(lines)}</div>"
                )
        blocks.append("".join(parts))
    if not blocks:
        return None
    return (
        '<section id="tokens"><h2>Token-level pictures</h2><p>Each completion token shaded by its score '
        "(SparsePO masks <code>mask_u</code> (reward) and <code>mask_d</code> (KL), TI-DPO "
        "<code>weight</code>), relative to the largest score of that pair; hover a token for its value.</p>"
        f"{''.join(blocks)}</section>"
    )


def _score_stats(rows: Sequence[TokenScores], kinds: Sequence[str]) -> str:
    """Per score kind: mean on chosen vs rejected tokens, fraction of exact zeros, top tokens."""
    byte_level = _is_byte_level(r.tokens for r in rows)
    lines = []
    for kind in kinds:
        by_side = {
            side: np.concatenate(
                [np.asarray(r.scores[kind]) for r in rows if r.side == side and kind in r.scores]
                or [np.zeros(0)]
            )
            for side in ("chosen", "rejected")
        }
        values = np.concatenate(list(by_side.values()))
        if values.size == 0:
            continue
        pairs = [
            (score, token)
            for r in rows
            if kind in r.scores
            for token, score in zip(r.tokens, r.scores[kind], strict=True)
        ]
        top = ", ".join(
            f"{escape(_display(t, byte_level).strip() or repr(t))} ({s:.2f})"
            for s, t in sorted(pairs, reverse=True)[:5]
        )
        means = " / ".join(
            f"{by_side[s].mean():.3f}" if by_side[s].size else "—" for s in ("chosen", "rejected")
        )
        lines.append(
            f"<tr><td>{escape(kind)}</td><td>{means}</td><td>{np.mean(values == 0):.1%}</td>"
            f"<td>{top}</td></tr>"
        )
    return (
        '<table class="stats"><thead><tr><th>score</th><th>mean chosen / rejected</th><th>exact zeros</th>'
        f"<th>highest tokens</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _token_line(row: TokenScores, kind: str, scale: float) -> str:
    red, green, blue = SCORE_COLOURS.get(kind, (120, 120, 120))
    byte_level = _is_byte_level([row.tokens])
    spans = []
    for token, score in zip(row.tokens, row.scores[kind], strict=True):
        alpha = 0.0 if scale <= 0 or not math.isfinite(score) else min(1.0, max(0.0, score / scale))
        spans.append(
            f'<span class="tok" style="background:rgba({red},{green},{blue},{alpha:.2f})" '
            f'title="{escape(repr(token))}: {score:.4g}">{escape(_display(token, byte_level))}</span>'
        )
    return f'<div class="tokens {row.side}"><span class="side">{row.side}</span>{"".join(spans)}</div>'


def _is_byte_level(token_lists) -> bool:
    return any(
        marker in token for tokens in token_lists for token in tokens for marker in _BYTE_LEVEL_MARKERS
    )


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte → printable-character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


_BYTE_DECODER = _byte_decoder()


def _display(token: str, byte_level: bool) -> str:
    if byte_level and all(ch in _BYTE_DECODER for ch in token):
        # A token holding part of a multi-byte character does not decode alone: shown as is.
        with contextlib.suppress(UnicodeDecodeError):
            token = bytes(_BYTE_DECODER[ch] for ch in token).decode("utf-8")
    return token.replace("\n", "⏎").replace("\t", "⇥")


_STYLE = """
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
ul.legend,ul.notes{font-size:12px;color:#444;padding-left:18px} ul.notes{color:#7a4b00}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{border:1px solid #eee;background:#fff}
svg .title{font-size:13px;font-weight:600} svg .tick{font-size:10px;fill:#555}
svg .axis{font-size:11px;fill:#333}
svg .legend{font-size:10px;fill:#333} svg .grid{stroke:#eee} svg .axisline{stroke:#999}
svg .whisker{stroke:#222;stroke-width:1.3;fill:none}
.pair{margin:8px 0 12px;border-left:3px solid #ddd;padding-left:8px}
.pairhead{font-size:12px;color:#555;margin-bottom:2px}
.tokens{font:13px/1.9 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
.tokens .side{display:inline-block;width:70px;color:#777;font:12px system-ui,sans-serif}
.tok{border-radius:2px;padding:1px 0} table.stats{font-size:12px;border-collapse:collapse}
table.stats td,table.stats th{border:1px solid #eee;padding:2px 6px;text-align:left}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenpo-harness leaderboard</title>
<style>{style}</style></head>
<body><header><h1>tokenpo-harness leaderboard</h1>
<div class="meta">baseline: {baseline} · generated {stamp}</div></header>
{body}
</body></html>
"""
