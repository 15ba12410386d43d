"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).

Sections: the leaderboard table with intervals and deltas (methods whose training was flagged
marked and listed last), one bar chart per benchmark, the reward–KL frontier of sentiment runs
(one point per method family and β, with intervals), mask sparsity and token weights per training
run, training curves from ``metrics.jsonl``, and token pictures from ``token_scores.jsonl`` (each
token shaded by its SparsePO mask or TI-DPO weight).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from tokenpo.core.files import write_atomic
from tokenpo.leaderboards import health
from tokenpo.leaderboards.board import Leaderboard, Row
from tokenpo.leaderboards.formatting import fmt_delta, fmt_interval, fmt_score, legend_lines, method_label, seeds_text
from tokenpo.leaderboards.frontier import (
    KL_METRIC,
    REWARD_METRIC,
    FrontierPoint,
    Interval,
    chart_groups,
    family_colours,
    frontier_points,
    frontier_svg,
)
from tokenpo.leaderboards.registry import Benchmark
from tokenpo.leaderboards.results import Result
from tokenpo.leaderboards.runs import (
    MASK_KEYS,
    OUTCOME_KEYS,
    SUMMARY_WINDOW,
    WEIGHT_KEYS,
    TokenScores,
    TrainingRun,
    load_runs,
    mask_weight_records,
)
from tokenpo.leaderboards.svg import PALETTE, SVG_STYLE, bar_chart, line_chart
from tokenpo.leaderboards.table import build_leaderboard

__all__ = ["KL_METRIC", "REWARD_METRIC", "build_html", "pareto_front", "write_report"]

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
    return write_atomic(out, build_html(board, loaded))


def build_html(board: Leaderboard, runs: Sequence[TrainingRun] = ()) -> str:
    colours = _method_colours(board)
    sections = [_table_section(board, colours), _benchmark_section(board, colours)]
    frontier = _frontier_section(board)
    if frontier:
        sections.append(frontier)
    masks = _masks_section(runs)
    if masks:
        sections.append(masks)
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
                    cell.score,
                    cell.score_sd,
                    cell.delta,
                    f"{b.label}: {cell.task}, n={cell.n}",
                    raw=cell.raw,
                    against_flagged=row.baseline_flagged,
                )
            )
        cells.append(
            _score_cell(
                row.average,
                row.average_sd,
                row.average_delta,
                "average",
                extra="average",
                against_flagged=row.baseline_flagged,
            )
        )
        name = escape(row.method) + (' <span class="tag">baseline</span>' if row.is_baseline else "")
        swatch = f'<span class="swatch" style="background:{colours[row.method]}"></span>'
        flagged = ' class="flagged"' if row.flagged else ""
        body.append(
            f'<tr{flagged}><th scope="row">{swatch}{name}{_health_badge(row)}</th>'
            f'<td class="text">{escape(row.model)}</td>'
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


def _health_badge(row: Row) -> str:
    """A visible badge naming the problems of a row whose training was flagged."""
    if not row.flagged:
        return ""
    problems = [
        (f"seed {seed}: " if seed is not None and len(row.runs) > 1 else "") + health.describe(flag)
        for seed, flags in row.health.items()
        for flag in flags
    ]
    return _badge(problems)


def _badge(problems: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
    return (
        f'<div class="badge warn"><span class="badgehead">{health.MARKER} did not train</span>'
        f'<ul class="problems">{items}</ul></div>'
    )


def _score_cell(
    score, sd, delta, title: str, extra: str = "", raw: float | None = None, against_flagged: bool = False
) -> str:
    """Normalised score (± sd over seeds), its interval, the raw headline value, the Δ to baseline
    (marked ⚠ when the baseline's training was flagged)."""
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
        mark = f"{health.MARKER} " if against_flagged else ""
        parts.append(f'<span class="delta {kind}">{mark}Δ {escape(fmt_delta(delta))}</span>')
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
                labels=[method_label(r) for r in rows],
                values=[e.value for e in estimates],
                intervals=[(e.low, e.high) if e.has_interval else None for e in estimates],
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
def _frontier_section(board: Leaderboard) -> str | None:
    points = frontier_points(board.results, confidence=board.confidence, n_boot=board.n_boot, seed=board.seed)
    if not points:
        return None
    colours = family_colours(points)
    blocks = []
    for group in chart_groups(points).values():
        chart = frontier_svg(group, standalone=False, colours=colours)
        blocks.append(f'<div class="frontier">{chart}{_frontier_table(group)}</div>')
    level = f"{board.confidence * 100:g}%"
    return (
        '<section id="frontier"><h2>Reward–KL frontier</h2><p>Sentiment control: the judge\'s positive rate '
        "against the sequence KL to the reference. One point per method family and β (labelled beside "
        "it): the mean over its seeds; bars are "
        f"{level} percentile-bootstrap intervals over items (doc_ids resampled; each counts with the mean "
        "of the seeds that have it). Each family's points are joined in order of KL; the base model is "
        "the black diamond; hollow, dashed: training flagged (did not train). "
        "<em>front</em>: no other point has both a lower KL and a higher positive rate.</p>"
        f'<div class="charts">{"".join(blocks)}</div></section>'
    )


def _frontier_table(points: Sequence[FrontierPoint]) -> str:
    front = set(pareto_front([(p.kl.value, p.reward.value) for p in points if not p.flagged]))
    rows = []
    for p in points:
        seeds = ",".join(str(s) for s in p.seeds if s is not None) or "—"
        on_front = "front" if (p.kl.value, p.reward.value) in front and not p.flagged else ""
        status = _badge([health.describe(f) for f in p.flags]) if p.flagged else escape(p.health)
        rows.append(
            f"<tr><td>{escape(p.family)}</td><td>{'—' if p.beta is None else f'{p.beta:g}'}</td>"
            f"<td>{escape(seeds)}</td><td>{p.n_items if p.n_items is not None else '—'}</td>"
            f"<td>{_interval_text(p.kl)}</td><td>{_interval_text(p.reward)}</td>"
            f"<td>{_interval_text(p.p_positive)}</td><td>{on_front}</td><td>{status}</td></tr>"
        )
    return (
        '<table class="stats frontier"><thead><tr><th>family</th><th>β</th><th>seeds</th><th>items</th>'
        "<th>KL to reference</th><th>positive rate</th><th>p(positive)</th><th>Pareto</th><th>training</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _interval_text(estimate: Interval | None) -> str:
    if estimate is None:
        return "—"
    if estimate.low is None or estimate.high is None:
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both counts (lower KL ``x`` and higher reward ``y``)."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


# --- mask sparsity and token weights -----------------------------------------------------------
_MASK_LABELS = {
    "mask/u_zero_fraction": "mask u = 0",
    "mask/d_zero_fraction": "mask d = 0",
    "mask/u_chosen_mean": "mask u chosen",
    "mask/u_rejected_mean": "mask u rejected",
    "mask/d_chosen_mean": "mask d chosen",
    "mask/d_rejected_mean": "mask d rejected",
    "weights/chosen_mean": "weight chosen",
    "weights/rejected_mean": "weight rejected",
    "weights/max": "weight max",
}


def _masks_section(runs: Sequence[TrainingRun]) -> str | None:
    records = [r for r in mask_weight_records(runs) if r["metrics"] or r["health"] != health.UNKNOWN]
    if not records:
        return None
    logged = {key for r in records for key in r["metrics"]}
    keys = [k for k in (*MASK_KEYS, *WEIGHT_KEYS) if k in logged]
    outcomes = [k for k in OUTCOME_KEYS if k in logged]
    head = "".join(f"<th>{escape(_MASK_LABELS.get(k, k))}</th>" for k in keys)
    head += "".join(f"<th>{escape(k)} (final)</th>" for k in outcomes)
    body = []
    for record in records:
        cells = []
        for key in keys:
            stat = record["metrics"].get(key)
            cells.append(f"<td>{stat['first']:.3f} → {stat['last']:.3f}</td>" if stat else "<td>—</td>")
        for key in outcomes:
            stat = record["metrics"].get(key)
            cells.append(f"<td>{stat['final']:.3f}</td>" if stat else "<td>—</td>")
        flags = record["health_flags"]
        status = _badge([health.describe(f) for f in flags]) if flags else escape(record["health"])
        body.append(
            f"<tr><td>{escape(record['run'])}</td><td>{escape(record['method'] or '—')}</td>"
            f"<td>{record['steps'] if record['steps'] is not None else '—'}</td>{''.join(cells)}<td>{status}</td></tr>"
        )
    return (
        '<section id="masks"><h2>Mask sparsity and token weights</h2><p>Per training run, from its '
        "<code>metrics.jsonl</code>: SparsePO's share of completion tokens whose mask is exactly zero and its "
        "mean mask on chosen and rejected tokens (<code>u</code>: reward mask, <code>d</code>: KL mask of "
        "independent heads), TI-DPO's token weights; each as <em>step 1 → mean of the last "
        f"{SUMMARY_WINDOW} logged steps</em>; then the last logged reward "
        "margin and accuracy, and the run's training-health flags (<code>health.json</code>).</p>"
        '<table class="stats masks"><thead><tr><th>run</th><th>method</th><th>steps</th>'
        f"{head}<th>training</th></tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


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
<div class="meta">baseline: {baseline} · generated {stamp}</div></header>
{body}
</body></html>
"""
