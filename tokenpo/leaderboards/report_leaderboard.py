"""The HTML report's sections drawn from the results: the matched-KL verdicts, the leaderboard table
(intervals, deltas, methods whose training was flagged marked and listed last), one bar chart per
benchmark, the reward–KL frontier of sentiment runs (one point per method family and β, with
intervals), and, where checkpoints were evaluated, each run's path and its benchmarks over steps."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from tokenpo.core.stats import Interval
from tokenpo.leaderboards import health
from tokenpo.leaderboards.board import Leaderboard, Row
from tokenpo.leaderboards.columns import Benchmark, normalised_score
from tokenpo.leaderboards.formatting import (
    VERDICT_HEAD,
    fmt_delta_verdict,
    fmt_interval,
    fmt_score,
    legend_lines,
    method_label,
    seeds_text,
    smoke_lines,
    verdict_intro,
    verdict_rows,
)
from tokenpo.leaderboards.frontier import (
    FrontierPoint,
    chart_groups,
    family_colours,
    frontier_points,
    frontier_svg,
    pareto_front,
)
from tokenpo.leaderboards.matched import REWARD_METRIC, RunPath, base_result, run_paths
from tokenpo.leaderboards.report_training import badge
from tokenpo.leaderboards.svg import ErrorPoint, PointSeries, bar_chart, colours_for, line_chart, scatter_chart
from tokenpo.leaderboards.verdicts import Verdict


# --- leaderboard table -------------------------------------------------------------------------
def verdict_section(board: Leaderboard) -> str | None:
    """The matched-KL verdicts: the comparison a run can make, first on the page."""
    if not board.verdicts:
        return None
    head = "".join(f"<th>{escape(h)}</th>" for h in VERDICT_HEAD)
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{escape(cell)}</td>' for cell in cells) + "</tr>"
        for cells in verdict_rows(board)
    )
    return (
        f'<section id="verdicts"><h2>Verdicts at matched KL (baseline: {escape(board.baseline)})</h2>'
        f"<p>{escape(verdict_intro(board))}</p>"
        f'<table class="leaderboard"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>'
    )


def table_section(board: Leaderboard, colours: dict[str, str]) -> str:
    head = "".join(f"<th>{escape(b.label)}</th>" for b in board.benchmarks)
    body = []
    for row in board.rows:
        cells = []
        for b in board.benchmarks:
            cell = row.cells.get(b.name)
            if cell is None:
                reference = row.is_baseline and b.versus_baseline
                cells.append('<td class="missing">reference</td>' if reference else '<td class="missing">missing</td>')
                continue
            cells.append(
                _score_cell(
                    cell.score,
                    cell.score_sd,
                    cell.delta,
                    f"{b.label}: {cell.task}, n={cell.n}",
                    board.cell_verdict(row, cell.delta, b.random),
                    raw=cell.raw,
                    against_flagged=row.baseline_flagged,
                )
            )
        if board.has_average:
            cells.append(
                _score_cell(
                    row.average,
                    row.average_sd,
                    row.average_delta,
                    "average",
                    board.cell_verdict(row, row.average_delta, None),
                    extra="average",
                    against_flagged=row.baseline_flagged,
                )
            )
        name = escape(row.method) + (' <span class="tag">baseline</span>' if row.is_baseline else "")
        swatch = f'<span class="swatch" style="background:{colours[row.method]}"></span>'
        flagged = ' class="flagged"' if row.flagged else ""
        covers = sorted({c.delta.covers for c in row.cells.values() if c.delta is not None})
        body.append(
            f'<tr{flagged}><th scope="row">{swatch}{name}{_health_badge(row)}</th>'
            f'<td class="text">{escape(row.model)}</td>'
            f'<td class="text">{escape(seeds_text(row))}</td>{"".join(cells)}'
            f'<td class="text">{escape("; ".join(covers) or "—")}</td></tr>'
        )
    legend = "".join(f"<li>{escape(line)}</li>" for line in legend_lines(board))
    smoke = "".join(f"<li>{escape(line)}</li>" for line in smoke_lines(board))
    smoke_block = (
        f"<h3>Smoke checks</h3><p>Run on too few items for an interval; in the tidy table, not compared.</p>"
        f'<ul class="legend">{smoke}</ul>'
        if smoke
        else ""
    )
    notes = "".join(f"<li>{escape(note)}</li>" for note in board.notes)
    notes_block = f'<h3>Notes</h3><ul class="notes">{notes}</ul>' if notes else ""
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        f'<table class="leaderboard"><thead><tr><th>method</th><th>model</th><th>seeds</th>{head}'
        f"{'<th>average</th>' if board.has_average else ''}<th>Δ intervals cover</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<ul class="legend">{legend}</ul>{smoke_block}{notes_block}</section>'
    )


def _health_badge(row: Row) -> str:
    """A visible badge naming the problems of a row whose training was flagged."""
    if not row.flagged:
        return ""
    problems = [f"across its seeds: {health.describe(flag)}" for flag in row.row_flags] + [
        (f"seed {seed}: " if seed is not None and len(row.runs) > 1 else "") + health.describe(flag)
        for seed, flags in row.health.items()
        for flag in flags
    ]
    return badge(problems)


def _score_cell(
    score,
    sd,
    delta,
    title: str,
    verdict: Verdict,
    extra: str = "",
    raw: float | None = None,
    against_flagged: bool = False,
) -> str:
    """Normalised score (± sd over seeds), its interval, the raw headline value, the Δ to baseline with
    its verdict word when it makes a claim (marked ⚠ when the baseline's training was flagged)."""
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
        parts.append(f'<span class="delta {kind}">{mark}Δ {escape(fmt_delta_verdict(delta, verdict))}</span>')
    return f'<td class="{extra}" title="{escape(title)}">{"".join(parts)}</td>'


# --- per-benchmark bars --------------------------------------------------------------------------
def benchmark_section(board: Leaderboard, colours: dict[str, str]) -> str:
    """A bar chart per benchmark and the average; where every model scored 0 a chart would be bare axes,
    so one line says so instead, naming the benchmark's tasks and metrics."""
    level = f"{board.confidence * 100:g}%"
    charts, all_zero = [], []
    for benchmark in [*board.benchmarks, None]:
        rows = [r for r in board.rows if (r.cells.get(benchmark.name) if benchmark else r.average)]
        if not rows:
            continue
        estimates = [r.cells[benchmark.name].score if benchmark else r.average for r in rows]
        if all(e.value == 0 for e in estimates):
            all_zero.append(_all_zero_line(benchmark, rows))
            continue
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
    zero_block = "".join(f"<li>{escape(line)}</li>" for line in all_zero)
    return (
        f'<section id="benchmarks"><h2>Benchmarks</h2><p>Normalised headline score per method; whiskers are '
        f"{level} intervals (two-level bootstrap over training seeds and prompts — prompts only with one seed — "
        "or the reported stderr).</p>"
        + (f'<div class="charts">{"".join(charts)}</div>' if charts else "")
        + (f'<ul class="legend zero">{zero_block}</ul>' if zero_block else "")
        + "</section>"
    )


def _all_zero_line(benchmark: Benchmark | None, rows: Sequence[Row]) -> str:
    """``MMLU (task mmlu, metric acc): every model scored 0 …`` — what stands where a chart of zeros would."""
    if benchmark is None:
        return f"Average: every model scored 0{_NO_CHART}"
    tasks = ", ".join(sorted({r.cells[benchmark.name].task for r in rows}))
    metrics = ", ".join(m.split(",")[0] for m in benchmark.metrics)
    return f"{benchmark.label} (task {tasks}, metric {metrics}): every model scored 0{_NO_CHART}"


_NO_CHART = " (normalised: no better than random guessing); no chart, the intervals are in the table"


def _chart_title(benchmark: Benchmark | None) -> str:
    return (
        "Average"
        if benchmark is None
        else f"{benchmark.label} ({'+'.join(m.split(',')[0] for m in benchmark.metrics)})"
    )


# --- reward–KL frontier ------------------------------------------------------------------------
def frontier_section(board: Leaderboard) -> str | None:
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
        "it): the mean over its seeds' final models; bars are "
        f"{level} intervals of the two-level bootstrap (training seeds drawn with replacement, then prompts, "
        "every sample of a prompt together; prompts only with one seed: the table's <em>covers</em>). "
        "Each family's points are joined in order of KL; the base model is "
        "the black diamond; hollow, dashed: training flagged (not ranked). "
        "<em>front</em>: no other point has both a lower KL and a higher positive rate. A point's positive rate is "
        "the leaderboard's <em>Positive rate</em> of the same results ÷ 100, with the same interval.</p>"
        f'<div class="charts">{"".join(blocks)}</div></section>'
    )


def _frontier_table(points: Sequence[FrontierPoint]) -> str:
    front = set(pareto_front([(p.kl.value, p.reward.value) for p in points if not p.flagged]))
    rows = []
    for p in points:
        seeds = ",".join(str(s) for s in p.seeds if s is not None) or "—"
        on_front = "front" if (p.kl.value, p.reward.value) in front and not p.flagged else ""
        status = badge([health.describe(f) for f in p.flags]) if p.flagged else escape(p.health)
        rows.append(
            f"<tr><td>{escape(p.family)}</td><td>{'—' if p.beta is None else f'{p.beta:g}'}</td>"
            f"<td>{escape(seeds)}</td><td>{p.n_items if p.n_items is not None else '—'}</td>"
            f"<td>{_interval_text(p.kl)}</td><td>{_interval_text(p.reward)}</td>"
            f"<td>{_interval_text(p.p_positive)}</td><td>{escape(p.reward.covers or '—')}</td><td>{on_front}</td>"
            f"<td>{status}</td></tr>"
        )
    return (
        '<table class="stats frontier"><thead><tr><th>family</th><th>β</th><th>seeds</th><th>items</th>'
        "<th>KL to reference</th><th>positive rate</th><th>p(positive)</th><th>covers</th><th>Pareto</th>"
        "<th>training</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _interval_text(estimate: Interval | None) -> str:
    if estimate is None:
        return "—"
    if estimate.low is None or estimate.high is None:
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"


# --- paths: checkpoints evaluated on the way ----------------------------------------------------------
def paths_section(board: Leaderboard) -> str | None:
    """Each run's (KL, reward) path from the base model through its evaluated checkpoints to its final model,
    and each benchmark's normalised score over steps: drawn when checkpoints were evaluated."""
    paths = [p for p in run_paths(board.results) if len(p.results) > 1]
    curves = _benchmark_curves(board)
    if not paths and not curves:
        return None
    methods = sorted({p.method for p in paths} | {method for _, series in curves for method, _ in series})
    colours = colours_for(methods)
    charts = _path_charts(board, paths, colours, standalone=False)
    for title, series in curves:
        lines = [
            (f"{method} seed {seed}", steps, scores, colours[method])
            for (method, seed), (steps, scores) in series.items()
        ]
        charts.append(line_chart(title, lines, "step", "normalised score"))
    return (
        '<section id="paths"><h2>Paths over training</h2><p>Every run evaluated at its saved checkpoints '
        "(eval.checkpoints): its (KL, positive rate) from the base model (step 0) to its final model, each point "
        "labelled with its step, as reported (no intervals: the verdicts above resample them); and each benchmark's "
        "normalised score over steps.</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def paths_svg(board: Leaderboard) -> str | None:
    """The runs' paths as a standalone SVG (the report's chart; ``OUT/paths.svg``) when the runs evaluated
    checkpoints on one judge task and base model; None otherwise."""
    paths = [p for p in run_paths(board.results) if len(p.results) > 1]
    if len({(p.task, p.model) for p in paths}) != 1:
        return None
    methods = sorted({p.method for p in paths})
    colours = colours_for(methods)
    return _path_charts(board, paths, colours, standalone=True)[0]


def _path_charts(board: Leaderboard, paths: list[RunPath], colours: dict[str, str], standalone: bool) -> list[str]:
    """One chart per (judge task, base model): every run's path from the base model's point."""
    charts = []
    for task, model in sorted({(p.task, p.model) for p in paths}):
        base = base_result(board.results, model, task)
        origin = [] if base is None else [ErrorPoint(0.0, base.metrics[(task, REWARD_METRIC)].value, label="0")]
        series = [
            _path_series(path, colours[path.method], origin)
            for path in paths
            if (path.task, path.model) == (task, model)
        ]
        charts.append(
            scatter_chart(
                f"{task}: each run's path ({model})",
                series,
                "KL to reference (nats)",
                "positive rate",
                standalone=standalone,
                kind="paths",
            )
        )
    return charts


def _path_series(path: RunPath, colour: str, origin: list[ErrorPoint]) -> PointSeries:
    name = f"{path.method} seed {path.seed}"
    points = [
        ErrorPoint(kl, reward, label=str(step), tip=f"{name}, step {step}: KL {kl:.3g}, positive rate {reward:.3g}")
        for step, kl, reward in path.points()
    ]
    return PointSeries(name, colour, [*origin, *points])


def _benchmark_curves(board: Leaderboard) -> list[tuple[str, dict[tuple, tuple[list[int], list[float]]]]]:
    """Per benchmark column, per run ``(method, seed)`` evaluated on it at several steps: (steps, scores)."""
    curves = []
    for benchmark in board.benchmarks:
        series: dict[tuple, tuple[list[int], list[float]]] = {}
        for result in sorted(board.results, key=lambda r: (r.method, repr(r.seed), r.step or 0)):
            task = next((t for t in benchmark.tasks if t in result.tasks), None)
            if task is None or result.step is None or not result.trained:
                continue
            if any((task, m) not in result.metrics for m in benchmark.metrics):
                continue
            raw = sum(result.metrics[(task, m)].value for m in benchmark.metrics) / len(benchmark.metrics)
            steps, scores = series.setdefault((result.method, result.seed), ([], []))
            steps.append(result.step)
            scores.append(normalised_score(raw, benchmark.random))
        series = {run: points for run, points in series.items() if len(points[0]) > 1}
        if series:
            curves.append((f"{benchmark.label} over steps", series))
    return curves
