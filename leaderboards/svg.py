"""Inline SVG charts (bars with intervals, lines, scatter): the report fetches nothing when opened."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999", "#000000")

WIDTH, HEIGHT = 420, 260
MARGIN = {"left": 52, "right": 12, "top": 28, "bottom": 56}


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


@dataclass(frozen=True)
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, value: float) -> float:
        left, right = MARGIN["left"], WIDTH - MARGIN["right"]
        return left + (value - self.x0) / ((self.x1 - self.x0) or 1.0) * (right - left)

    def y(self, value: float) -> float:
        top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"]
        return bottom - (value - self.y0) / ((self.y1 - self.y0) or 1.0) * (bottom - top)


def _open(title: str, kind: str) -> list[str]:
    return [
        f'<svg class="chart {kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="title">{escape(title)}</text>',
    ]


def _y_axis(frame: _Frame, ticks: Sequence[float], label: str) -> list[str]:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{y:.1f}" y2="{y:.1f}" '
            'class="grid"/>'
        )
        parts.append(
            f'<text x="{MARGIN["left"] - 4}" y="{y + 3:.1f}" text-anchor="end" class="tick">{tick:g}</text>'
        )
    mid = (MARGIN["top"] + HEIGHT - MARGIN["bottom"]) / 2
    parts.append(
        f'<text transform="translate(12 {mid:.0f}) rotate(-90)" text-anchor="middle" class="axis">'
        f"{escape(label)}</text>"
    )
    return parts


def _x_axis(frame: _Frame, ticks: Sequence[float], label: str) -> list[str]:
    bottom = HEIGHT - MARGIN["bottom"]
    parts = [
        f'<line x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{bottom}" y2="{bottom}" '
        'class="axisline"/>'
    ]
    for tick in ticks:
        x = frame.x(tick)
        parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">{tick:g}</text>')
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">{escape(label)}</text>'
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
    tops = [v for v in values if math.isfinite(v)] + [
        h for i in intervals if i for h in i if math.isfinite(h)
    ]
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
        f'<line x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{bottom}" y2="{bottom}" '
        'class="axisline"/>'
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


def scatter_chart(
    title: str,
    points: Sequence[tuple[str, float, float, str]],
    lines: Sequence[tuple[str, Sequence[tuple[float, float]], str]],
    x_label: str,
    y_label: str,
) -> str:
    """Labelled points ``(label, x, y, colour)`` and polylines ``(name, [(x, y)…], colour)``."""
    x_ticks = nice_ticks(min(0.0, *(p[1] for p in points)), max(p[1] for p in points))
    y_ticks = nice_ticks(min(p[2] for p in points), max(p[2] for p in points))
    frame = _Frame(x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1])
    parts = _open(title, "scatter") + _y_axis(frame, y_ticks, y_label) + _x_axis(frame, x_ticks, x_label)
    for name, path, color in lines:
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in path)
        parts.append(
            f'<polyline class="frontier" points="{coords}" fill="none" stroke="{color}" '
            f'stroke-dasharray="4 3"><title>{escape(name)}</title></polyline>'
        )
    for label, x, y, color in points:
        parts.append(
            f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="4" fill="{color}">'
            f"<title>{escape(f'{label}: KL {x:.3g}, reward {y:.3g}')}</title></circle>"
        )
    parts += _legend(list(dict.fromkeys((name, color) for name, _, color in lines)))
    return "\n".join([*parts, "</svg>"])


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
