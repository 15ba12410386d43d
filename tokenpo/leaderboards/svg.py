"""Inline SVG charts (bars with intervals, lines, scatter with interval bars): the report fetches nothing."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999", "#000000")

WIDTH, HEIGHT = 420, 260
MARGIN = {"left": 52, "right": 12, "top": 28, "bottom": 56}
# The frontier chart: wider, its legend on the right (family names are long).
FRONTIER_WIDTH, FRONTIER_HEIGHT = 640, 340
FRONTIER_MARGIN = {"left": 52, "right": 220, "top": 28, "bottom": 40}
# Pixels between the outermost tick of a scatter chart and the edge of its plot: a marker on the edge of
# the data (the base model at KL 0, the lowest reward) would otherwise be drawn half across the axis and
# over its tick labels. Larger than the biggest marker's half-size (a diamond: 1.35 × 4.5 + its stroke).
SCATTER_PAD = 10
# Characters of a series name that fit between the side legend's marker and the chart's right edge at
# 10 px (about 5.6 px a character); a longer name is cut, whole in its tooltip.
SIDE_LEGEND_CHARACTERS = 30

# The charts' styles: the report's page has them; a standalone chart embeds them.
SVG_STYLE = """
svg.chart{border:1px solid #eee;background:#fff;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}
svg .title{font-size:13px;font-weight:600} svg .tick{font-size:10px;fill:#555}
svg .axis{font-size:11px;fill:#333}
svg .legend{font-size:10px;fill:#333} svg .grid{stroke:#eee} svg .axisline{stroke:#999}
svg .whisker{stroke:#222;stroke-width:1.3;fill:none}
svg .errorbar{fill:none;stroke-width:1.2} svg .pointlabel{font-size:9px;fill:#333}
svg .join{fill:none;stroke-width:1.6}
"""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` with steps of 1, 2 or 5 × 10^k."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def colours_for(names: Iterable[str]) -> dict[str, str]:
    """One PALETTE colour per name, in order (the palette repeats past its end)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


@dataclass(frozen=True)
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT
    margin: dict = field(default_factory=lambda: dict(MARGIN))

    @property
    def left(self) -> float:
        return self.margin["left"]

    @property
    def right(self) -> float:
        return self.width - self.margin["right"]

    @property
    def top(self) -> float:
        return self.margin["top"]

    @property
    def bottom(self) -> float:
        return self.height - self.margin["bottom"]

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / ((self.x1 - self.x0) or 1.0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / ((self.y1 - self.y0) or 1.0) * (self.bottom - self.top)


def _open(title: str, kind: str, width: int = WIDTH, height: int = HEIGHT, standalone: bool = False) -> list[str]:
    parts = [
        f'<svg class="chart {kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
    ]
    if standalone:
        parts.append(f"<style>{SVG_STYLE}</style>")
        parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>')
    parts.append(f'<text x="{width / 2}" y="16" text-anchor="middle" class="title">{escape(title)}</text>')
    return parts


def _y_axis(frame: _Frame, ticks: Sequence[float], label: str) -> list[str]:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{frame.left - 4}" y="{y + 3:.1f}" text-anchor="end" class="tick">{tick:g}</text>')
    mid = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text transform="translate(12 {mid:.0f}) rotate(-90)" text-anchor="middle" class="axis">'
        f"{escape(label)}</text>"
    )
    return parts


def _x_axis(frame: _Frame, ticks: Sequence[float], label: str) -> list[str]:
    parts = [f'<line x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" y2="{frame.bottom}" class="axisline"/>']
    for tick in ticks:
        x = frame.x(tick)
        parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 14}" text-anchor="middle" class="tick">{tick:g}</text>')
    centre = (frame.left + frame.right) / 2
    parts.append(
        f'<text x="{centre:.0f}" y="{frame.height - 8}" text-anchor="middle" class="axis">{escape(label)}</text>'
    )
    return parts


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    intervals: Sequence[tuple[float, float] | None],
    colors: Sequence[str],
    y_label: str,
) -> str:
    """Vertical bars with interval whiskers; each bar's value and interval in its tooltip."""
    tops = [v for v in values if math.isfinite(v)] + [h for i in intervals if i for h in i if math.isfinite(h)]
    ticks = nice_ticks(0.0, max([1.0, *tops]))
    frame = _Frame(0, len(values), 0.0, ticks[-1])
    parts = _open(title, "bars") + _y_axis(frame, ticks, y_label)
    bottom = HEIGHT - MARGIN["bottom"]
    slot = frame.x(1) - frame.x(0)
    for i, (label, value, interval, color) in enumerate(zip(labels, values, intervals, colors, strict=True)):
        x = frame.x(i) + slot * 0.15
        width = slot * 0.7
        tip = f"{label}: {value:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
        height = max(0.0, bottom - frame.y(value)) if math.isfinite(value) else 0.0
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{bottom - height:.1f}" width="{width:.1f}" '
            f'height="{max(height, 0.5):.1f}" fill="{color}"><title>{escape(tip)}</title></rect>'
        )
        if interval and all(math.isfinite(v) for v in interval):
            cx, y_low, y_high = x + width / 2, frame.y(interval[0]), frame.y(interval[1])
            parts.append(
                f'<path class="whisker" d="M{cx:.1f} {y_low:.1f}V{y_high:.1f}M{cx - 5:.1f} {y_low:.1f}'
                f'h10M{cx - 5:.1f} {y_high:.1f}h10"/>'
            )
        parts.append(
            f'<text x="{x + width / 2:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">'
            f"{escape(_short(label))}</text>"
        )
    parts.append(
        f'<line x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{bottom}" y2="{bottom}" class="axisline"/>'
    )
    return "\n".join([*parts, "</svg>"])


def line_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    x_label: str,
    y_label: str,
) -> str:
    """One polyline per ``(name, xs, ys, colour)`` series, with a legend."""
    xs = [x for _, sx, _, _ in series for x in sx]
    ys = [y for _, _, sy, _ in series for y in sy]
    x_ticks = nice_ticks(min(xs), max(xs))
    y_ticks = nice_ticks(min(ys), max(ys))
    frame = _Frame(x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1])
    parts = _open(title, "lines") + _y_axis(frame, y_ticks, y_label) + _x_axis(frame, x_ticks, x_label)
    for name, sx, sy, color in series:
        points = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in zip(sx, sy, strict=True))
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" stroke="{color}" stroke-width="1.6">'
            f"<title>{escape(name)}</title></polyline>"
        )
    parts += _legend([(name, color) for name, _, _, color in series])
    return "\n".join([*parts, "</svg>"])


@dataclass(frozen=True)
class ErrorPoint:
    """A point with optional intervals on both axes, a short label beside it and a tooltip."""

    x: float
    y: float
    x_interval: tuple[float, float] | None = None
    y_interval: tuple[float, float] | None = None
    label: str = ""
    tip: str = ""
    hollow: bool = False  # drawn as an outline (e.g. a run that did not train)


@dataclass(frozen=True)
class PointSeries:
    """Points of one colour and marker; ``joined``: a line through them in the given order."""

    name: str
    colour: str
    points: Sequence[ErrorPoint]
    joined: bool = True
    dashed: bool = False
    marker: str = "circle"  # or "diamond"


def scatter_chart(
    title: str,
    series: Sequence[PointSeries],
    x_label: str,
    y_label: str,
    standalone: bool = False,
    kind: str = "",
) -> str:
    """Points with interval bars: per point a marker (class ``point``), a horizontal and a
    vertical error bar (``errorbar x`` / ``errorbar y``) and its label; per series a joining line
    (``join``) and a legend entry on the right. ``standalone`` embeds the styles (an .svg file)."""
    points = [p for s in series for p in s.points]
    if not points:
        raise ValueError("scatter_chart: no points")
    xs = [v for p in points for v in (p.x, *(p.x_interval or ())) if math.isfinite(v)]
    ys = [v for p in points for v in (p.y, *(p.y_interval or ())) if math.isfinite(v)]
    x_ticks = nice_ticks(min(0.0, *xs), max(xs))
    y_ticks = nice_ticks(min(ys), max(ys))
    frame = _padded_frame(x_ticks, y_ticks, FRONTIER_WIDTH, FRONTIER_HEIGHT, dict(FRONTIER_MARGIN), SCATTER_PAD)
    parts = _open(title, f"scatter {kind}".strip(), frame.width, frame.height, standalone)
    parts += _y_axis(frame, y_ticks, y_label) + _x_axis(frame, x_ticks, x_label)
    for s in series:
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        if s.joined and len(s.points) > 1:
            coords = " ".join(f"{frame.x(p.x):.1f},{frame.y(p.y):.1f}" for p in s.points)
            parts.append(
                f'<polyline class="join" points="{coords}" stroke="{s.colour}"{dash}>'
                f"<title>{escape(s.name)}</title></polyline>"
            )
        for p in s.points:
            parts += _error_bars(frame, p, s.colour, dash)
    for s in series:  # markers above every line and bar
        for p in s.points:
            parts.append(_marker(frame.x(p.x), frame.y(p.y), s.colour, s.marker, p.hollow, p.tip))
            if p.label:
                parts.append(
                    f'<text x="{frame.x(p.x) + 6:.1f}" y="{frame.y(p.y) - 6:.1f}" class="pointlabel">'
                    f"{escape(p.label)}</text>"
                )
    parts += _side_legend(frame, series)
    return "\n".join([*parts, "</svg>"])


def _padded_frame(
    x_ticks: Sequence[float], y_ticks: Sequence[float], width: int, height: int, margin: dict, pad: float
) -> _Frame:
    """A frame whose outermost ticks sit ``pad`` pixels inside the plot: its data range widened on each
    side by what ``pad`` pixels are worth, so every marker lies wholly inside the axes, clear of the
    tick labels outside them."""
    plot_width = width - margin["left"] - margin["right"]
    plot_height = height - margin["top"] - margin["bottom"]

    def widened(low: float, high: float, pixels: float) -> tuple[float, float]:
        per_pixel = ((high - low) or 1.0) / (pixels - 2 * pad)
        return low - pad * per_pixel, high + pad * per_pixel

    x0, x1 = widened(x_ticks[0], x_ticks[-1], plot_width)
    y0, y1 = widened(y_ticks[0], y_ticks[-1], plot_height)
    return _Frame(x0, x1, y0, y1, width, height, margin)


def _error_bars(frame: _Frame, point: ErrorPoint, colour: str, dash: str) -> list[str]:
    parts = []
    x, y = frame.x(point.x), frame.y(point.y)
    if point.x_interval and all(math.isfinite(v) for v in point.x_interval):
        low, high = (frame.x(v) for v in point.x_interval)
        parts.append(
            f'<path class="errorbar x" d="M{low:.1f} {y:.1f}H{high:.1f}M{low:.1f} {y - 3:.1f}v6'
            f'M{high:.1f} {y - 3:.1f}v6" stroke="{colour}"{dash}/>'
        )
    if point.y_interval and all(math.isfinite(v) for v in point.y_interval):
        low, high = (frame.y(v) for v in point.y_interval)
        parts.append(
            f'<path class="errorbar y" d="M{x:.1f} {low:.1f}V{high:.1f}M{x - 3:.1f} {low:.1f}h6'
            f'M{x - 3:.1f} {high:.1f}h6" stroke="{colour}"{dash}/>'
        )
    return parts


def _marker(
    x: float, y: float, colour: str, shape: str, hollow: bool, tip: str = "", kind: str = "point", size: float = 4.5
) -> str:
    style = f'fill="{"#fff" if hollow else colour}" stroke="{colour}" stroke-width="1.5"'
    title = f"<title>{escape(tip)}</title>" if tip else ""
    if shape == "diamond":
        r = size * 1.35
        return (
            f'<path class="{kind} diamond" d="M{x:.1f} {y - r:.1f}L{x + r:.1f} {y:.1f}L{x:.1f} {y + r:.1f}'
            f'L{x - r:.1f} {y:.1f}Z" {style}>{title}</path>'
        )
    return f'<circle class="{kind}" cx="{x:.1f}" cy="{y:.1f}" r="{size}" {style}>{title}</circle>'


def _side_legend(frame: _Frame, series: Sequence[PointSeries]) -> list[str]:
    parts = []
    x = frame.right + 34
    for i, s in enumerate(series[:18]):
        y = frame.top + 8 + i * 15
        hollow = bool(s.points) and all(p.hollow for p in s.points)
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        if s.joined:
            parts.append(
                f'<line x1="{x - 8}" x2="{x + 8}" y1="{y}" y2="{y}" stroke="{s.colour}" stroke-width="1.6"{dash}/>'
            )
        parts.append(_marker(x, y, s.colour, s.marker, hollow, kind="legendmark", size=3.5))
        parts.append(
            f'<text x="{x + 13}" y="{y + 3}" class="legend">{escape(_short(s.name, SIDE_LEGEND_CHARACTERS))}'
            f"<title>{escape(s.name)}</title></text>"
        )
    if len(series) > 18:
        parts.append(f'<text x="{x}" y="{frame.top + 8 + 18 * 15}" class="legend">… {len(series) - 18} more</text>')
    return parts


def _legend(entries: Sequence[tuple[str, str]]) -> list[str]:
    parts = []
    for i, (name, color) in enumerate(entries[:8]):
        x = MARGIN["left"] + 6 + (i % 3) * 120
        y = HEIGHT - MARGIN["bottom"] + 30 + (i // 3) * 11
        parts.append(
            f'<rect x="{x}" y="{y - 7}" width="9" height="9" fill="{color}"/>'
            f'<text x="{x + 12}" y="{y + 1}" class="legend">{escape(_short(name, 18))}</text>'
        )
    return parts


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
