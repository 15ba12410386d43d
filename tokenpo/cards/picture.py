"""The token picture beside a model card: a few training pairs, each completion token shaded by its
SparsePO mask or TI-DPO weight (as ``token_scores.jsonl`` holds them), as one standalone SVG file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from tokenpo.leaderboards.report_training import SCORE_COLOURS, display_token, is_byte_level
from tokenpo.leaderboards.runs import TokenScores

WIDTH = 820
MARGIN = 12
LABEL = 74  # the side's label column
CHAR = 7.2  # advance of one character at FONT_SIZE in a monospace font
FONT_SIZE = 12
LINE = 18
PAIRS = 2
KIND_TITLES = {
    "mask_u": "SparsePO mask m_u (reward)",
    "mask_d": "SparsePO mask m_d (KL)",
    "weight": "TI-DPO weight",
    "logratio": "log π/π_ref per token",
}
COMMON_MASK_TITLE = "SparsePO mask, one for reward and KL (m_u = m_d)"


def token_picture(
    rows: Sequence[TokenScores], run_name: str, pairs: int = PAIRS, common_mask: bool = False
) -> str | None:
    """The SVG of the first ``pairs`` pairs of ``rows``, one block per pair and score kind, chosen above
    rejected; the darkest token is the pair's largest score. None when the run logged no token scores.
    ``common_mask``: the run's SparsePO masks are one (``TrainingRun.common_mask``), so ``mask_d`` repeats
    ``mask_u`` and only ``mask_u`` is drawn, titled as the common mask (as the report draws it)."""
    examples = list(dict.fromkeys(row.example for row in rows))[:pairs]
    kinds = [
        kind
        for kind in dict.fromkeys(kind for row in rows for kind in row.scores)
        if not (common_mask and kind == "mask_d")
    ]
    titles = {**KIND_TITLES, "mask_u": COMMON_MASK_TITLE} if common_mask else KIND_TITLES
    if not examples or not kinds:
        return None
    byte_level = is_byte_level(row.tokens for row in rows)
    body: list[str] = []
    y = MARGIN + FONT_SIZE
    body.append(_text(MARGIN, y, f"{run_name}: token scores of {len(examples)} training pairs", bold=True))
    y += LINE
    for example in examples:
        pair = sorted((r for r in rows if r.example == example), key=lambda r: r.side)
        for kind in kinds:
            scale = max((max(r.scores[kind], default=0.0) for r in pair if kind in r.scores), default=0.0)
            y += LINE // 2
            title = f"pair {example} · {titles.get(kind, kind)} (darkest = {scale:.3g})"
            body.append(_text(MARGIN, y, title, bold=True))
            y += LINE
            for row in (r for r in pair if kind in r.scores):
                y = _tokens(body, row, kind, scale, byte_level, y)
    height = y + MARGIN
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="ui-monospace, Menlo, Consolas, monospace" '
        f'font-size="{FONT_SIZE}">\n<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )


def _tokens(body: list[str], row: TokenScores, kind: str, scale: float, byte_level: bool, y: int) -> int:
    """One completion's tokens, wrapped to the width; returns the baseline of the next line."""
    red, green, blue = SCORE_COLOURS.get(kind, (120, 120, 120))
    body.append(_text(MARGIN, y, row.side))
    x = MARGIN + LABEL
    for token, score in zip(row.tokens, row.scores[kind], strict=True):
        shown = _printable(display_token(token, byte_level))
        width = max(1, len(shown)) * CHAR
        if x + width > WIDTH - MARGIN and x > MARGIN + LABEL:
            x, y = MARGIN + LABEL, y + LINE
        alpha = 0.0 if scale <= 0 or not math.isfinite(score) else min(1.0, max(0.0, score / scale))
        body.append(
            f'<rect x="{x:.1f}" y="{y - FONT_SIZE}" width="{width:.1f}" height="{LINE - 2}" '
            f'fill="rgb({red},{green},{blue})" fill-opacity="{alpha:.2f}"><title>{escape(repr(token))}: '
            f"{score:.4g}</title></rect>"
        )
        body.append(_text(x, y, shown, preserve=True))
        x += width
    return y + LINE


def _text(x: float, y: float, text: str, bold: bool = False, preserve: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    space = ' xml:space="preserve"' if preserve else ""
    return f'<text x="{x:.1f}" y="{y}"{weight}{space}>{escape(_printable(text))}</text>'


def _printable(text: str) -> str:
    """Control characters as ``\\xNN``: XML admits none but tab and line breaks, and a byte-level
    tokenizer has a token for each byte."""
    return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 else ch for ch in text)
