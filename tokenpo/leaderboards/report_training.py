"""The HTML report's sections drawn from training runs: mask sparsity and token weights per run,
training curves from ``metrics.jsonl``, and token pictures from ``token_scores.jsonl`` (each token
shaded by its SparsePO mask or TI-DPO weight; one mask picture where a common head makes the two masks
one); and the badge that names a run's training-health flags."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

from tokenpo.leaderboards import health
from tokenpo.leaderboards.runs import (
    HELD_OUT_PREFIX,
    MASK_KEYS,
    OUTCOME_KEYS,
    SUMMARY_WINDOW,
    WEIGHT_KEYS,
    TokenScores,
    TrainingRun,
    mask_weight_records,
)
from tokenpo.leaderboards.svg import colours_for, line_chart

# Training curves shown first, in this order, when logged; then the method-specific families.
CURVES = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "grad_norm")
CURVE_FAMILIES = ("kl/", "mask/", "weights/")
MAX_CURVES = 12
TOKEN_EXAMPLES = 3
SCORE_COLOURS = {"mask_u": (0, 114, 178), "mask_d": (213, 94, 0), "weight": (0, 158, 115)}
# A run whose masks are one (``TrainingRun.common_mask``) logs the same numbers as mask_u and mask_d:
# drawn once, as mask_u, under this name.
COMMON_MASK = "mask (m_u = m_d)"
# Byte-level BPE shows bytes as printable characters (GPT-2's table); tokens carrying these
# markers are turned back into text for display.
_BYTE_LEVEL_MARKERS = ("Ġ", "Ċ", "ĉ")


def badge(problems: Sequence[str]) -> str:
    """A visible "training flagged" badge listing a training run's problems."""
    items = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
    return (
        f'<div class="badge warn"><span class="badgehead">{health.MARKER} training flagged</span>'
        f'<ul class="problems">{items}</ul></div>'
    )


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


def masks_section(runs: Sequence[TrainingRun]) -> str | None:
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
        for key in ("effective_beta", "anchor_coverage"):
            cells.append(f"<td>{record[key]:.3g}</td>" if record[key] is not None else "<td>—</td>")
        flags = record["health_flags"]
        status = badge([health.describe(f) for f in flags]) if flags else escape(record["health"])
        body.append(
            f"<tr><td>{escape(record['run'])}</td><td>{escape(record['method'] or '—')}</td>"
            f"<td>{record['steps'] if record['steps'] is not None else '—'}</td>{''.join(cells)}<td>{status}</td>"
            f"<td>{escape(_checks_text(record['health_checks']))}</td></tr>"
        )
    return (
        '<section id="masks"><h2>Mask sparsity and token weights</h2><p>Per training run, from its '
        "<code>metrics.jsonl</code>: SparsePO's share of completion tokens whose mask is exactly zero and its "
        "mean mask on chosen and rejected tokens (<code>u</code>: reward mask, <code>d</code>: KL mask of "
        "independent heads), TI-DPO's token weights; each as <em>step 1 → mean of the last "
        f"{SUMMARY_WINDOW} logged steps</em>; then the last logged reward "
        "margin and accuracy, the effective β (β × the mean multiplier), TI-DPO's anchor coverage (the share of "
        "pairs that ever had an anchor), the run's training-health flags and every check's outcome "
        "(<code>health.json</code>; docs/training.md lists the checks).</p>"
        '<table class="stats masks"><thead><tr><th>run</th><th>method</th><th>steps</th>'
        f"{head}<th>effective β</th><th>anchor coverage</th><th>training</th><th>checks</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _checks_text(checks: Sequence[dict]) -> str:
    """``flag: concentrated_weights · pass: zero_masks, … · n/a: anchor_coverage`` (— without checks)."""
    if not checks:
        return "—"
    parts = []
    for outcome in ("flag", "pass", "n/a"):
        names = list(dict.fromkeys(check["name"] for check in checks if check["outcome"] == outcome))
        if names:
            parts.append(f"{outcome}: {', '.join(names)}")
    return " · ".join(parts)


# --- training curves ---------------------------------------------------------------------------
def curves_section(runs: Sequence[TrainingRun]) -> str | None:
    with_metrics = [run for run in runs if not run.metrics.empty and "step" in run.metrics]
    if not with_metrics:
        return None
    logged = list(dict.fromkeys(c for run in with_metrics for c in run.metrics.columns))
    keys = [k for k in CURVES if k in logged]
    keys += [k for k in logged if k.startswith(CURVE_FAMILIES) and k not in keys]
    held_out = [run for run in with_metrics if any(c.startswith(HELD_OUT_PREFIX) for c in run.metrics.columns)]
    colours = colours_for([*(run.name for run in with_metrics), *(held_out_label(run.name) for run in held_out)])
    charts = []
    for key in keys[:MAX_CURVES]:
        series = []
        for run in with_metrics:
            # The held-out pairs' value (training.eval_steps) beside the training batches', in one chart.
            for column, label in ((key, run.name), (HELD_OUT_PREFIX + key, held_out_label(run.name))):
                frame = run.metrics[["step", column]].dropna() if column in run.metrics else None
                if frame is not None and not frame.empty:
                    series.append((label, frame["step"].tolist(), frame[column].tolist(), colours[label]))
        if series:
            charts.append(line_chart(key, series, "step", key))
    skipped = len(keys) - MAX_CURVES
    more = f"<p>{skipped} more logged metrics are in the runs' metrics.jsonl.</p>" if skipped > 0 else ""
    names = ", ".join(f"{escape(run.name)} ({escape(run.method or 'method not recorded')})" for run in with_metrics)
    return (
        f'<section id="training"><h2>Training curves</h2><p>Runs: {names}.</p>'
        f'<div class="charts">{"".join(charts)}</div>{more}</section>'
    )


def held_out_label(run: str) -> str:
    return f"{run} (held-out)"


# --- token pictures ----------------------------------------------------------------------------
def tokens_section(runs: Sequence[TrainingRun]) -> str | None:
    blocks = []
    for run in runs:
        if not run.token_scores:
            continue
        examples = list(dict.fromkeys(row.example for row in run.token_scores))[:TOKEN_EXAMPLES]
        kinds = picture_kinds(run)
        parts = [f"<h3>{escape(run.name)}</h3>"]
        if kinds.get("mask_u") == COMMON_MASK:
            parts.append(
                "<p>One common mask serves both the reward and the KL term (SparsePO with one mask head, "
                "<code>heads: common</code>, or activation masks): m<sub>u</sub> = m<sub>d</sub>, drawn once.</p>"
            )
        parts.append(_score_stats(run.token_scores, kinds))
        for example in examples:
            rows = [row for row in run.token_scores if row.example == example]
            for kind in kinds:
                scale = max((max(row.scores[kind], default=0.0) for row in rows if kind in row.scores), default=0.0)
                lines = [
                    _token_line(row, kind, scale) for row in sorted(rows, key=lambda r: r.side) if kind in row.scores
                ]
                parts.append(
                    f'<div class="pair"><div class="pairhead">example {example} · {escape(kinds[kind])} '
                    f"(darkest = {scale:.3g})</div>{''.join(lines)}</div>"
                )
        blocks.append("".join(parts))
    if not blocks:
        return None
    return (
        '<section id="tokens"><h2>Token-level pictures</h2><p>Each completion token shaded by its score '
        "(SparsePO masks <code>mask_u</code> (reward) and <code>mask_d</code> (KL), one picture where they are "
        "one common mask; TI-DPO "
        "<code>weight</code>), relative to the largest score of that pair; hover a token for its value.</p>"
        f"{''.join(blocks)}</section>"
    )


def picture_kinds(run: TrainingRun) -> dict[str, str]:
    """The score kinds of a run's token pictures, each with the name it is shown under: every kind it
    logged, except that where its masks are one (``common_mask``) ``mask_d`` repeats ``mask_u`` and is
    left out, ``mask_u`` shown as the common mask."""
    kinds = {kind: kind for row in run.token_scores for kind in row.scores}
    if run.common_mask and "mask_u" in kinds:
        kinds.pop("mask_d", None)
        kinds["mask_u"] = COMMON_MASK
    return kinds


def _score_stats(rows: Sequence[TokenScores], kinds: Mapping[str, str]) -> str:
    """Per score kind: mean on chosen vs rejected tokens, fraction of exact zeros, top tokens."""
    byte_level = is_byte_level(r.tokens for r in rows)
    lines = []
    for kind in kinds:
        by_side = {
            side: np.concatenate(
                [np.asarray(r.scores[kind]) for r in rows if r.side == side and kind in r.scores] or [np.zeros(0)]
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
            f"{escape(display_token(t, byte_level).strip() or repr(t))} ({s:.2f})"
            for s, t in sorted(pairs, reverse=True)[:5]
        )
        means = " / ".join(f"{by_side[s].mean():.3f}" if by_side[s].size else "—" for s in ("chosen", "rejected"))
        lines.append(
            f"<tr><td>{escape(kinds[kind])}</td><td>{means}</td><td>{np.mean(values == 0):.1%}</td><td>{top}</td></tr>"
        )
    return (
        '<table class="stats"><thead><tr><th>score</th><th>mean chosen / rejected</th><th>exact zeros</th>'
        f"<th>highest tokens</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _token_line(row: TokenScores, kind: str, scale: float) -> str:
    red, green, blue = SCORE_COLOURS.get(kind, (120, 120, 120))
    byte_level = is_byte_level([row.tokens])
    spans = []
    for token, score in zip(row.tokens, row.scores[kind], strict=True):
        alpha = 0.0 if scale <= 0 or not math.isfinite(score) else min(1.0, max(0.0, score / scale))
        spans.append(
            f'<span class="tok" style="background:rgba({red},{green},{blue},{alpha:.2f})" '
            f'title="{escape(repr(token))}: {score:.4g}">{escape(display_token(token, byte_level))}</span>'
        )
    return f'<div class="tokens {row.side}"><span class="side">{row.side}</span>{"".join(spans)}</div>'


def is_byte_level(token_lists) -> bool:
    return any(marker in token for tokens in token_lists for token in tokens for marker in _BYTE_LEVEL_MARKERS)


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte → printable-character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


_BYTE_DECODER = _byte_decoder()


def display_token(token: str, byte_level: bool) -> str:
    if byte_level and all(ch in _BYTE_DECODER for ch in token):
        # A token holding part of a multi-byte character does not decode alone: shown as is.
        with contextlib.suppress(UnicodeDecodeError):
            token = bytes(_BYTE_DECODER[ch] for ch in token).decode("utf-8")
    return token.replace("\n", "⏎").replace("\t", "⇥")
