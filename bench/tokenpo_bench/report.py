"""Rows of the benchmark report: a value, its ratio to a reference contender, a target and a verdict.

The issue states every target as a ratio measured on the same machine in the same run, so a row
holds the ratio (never an absolute time) and the verdict follows from it alone. The JSON report
holds the machine, the settings, every raw measurement and these rows (:data:`SCHEMA`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tokenpo.core.files import write_atomic

SCHEMA = "tokenpo-harness/bench/1"
MET, MISSED, NOT_APPLICABLE, NO_TARGET = "met", "missed", "n.a.", "-"


@dataclass(frozen=True)
class Target:
    """A bound on a ratio, e.g. ``Target("<=", 0.75)``: our step time at most 0.75× TRL's."""

    op: Literal["<=", ">="]
    bound: float

    def holds(self, ratio: float) -> bool:
        return ratio <= self.bound if self.op == "<=" else ratio >= self.bound

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.bound:g}×"


@dataclass(frozen=True)
class Row:
    """One line of the table: ``value`` of ``contender`` and, when compared, its ratio to ``reference``."""

    section: str
    contender: str
    measurement: str
    value: float | None
    unit: str
    reference: str | None = None
    ratio: float | None = None
    target: str | None = None
    verdict: str = NO_TARGET
    note: str = ""


def compare(
    section: str,
    contender: str,
    measurement: str,
    value: float | None,
    unit: str,
    reference: str | None = None,
    reference_value: float | None = None,
    target: Target | None = None,
    unavailable: str | None = None,
    note: str = "",
) -> Row:
    """A row with the ratio ``value / reference_value`` and the target's verdict.

    ``unavailable`` (a reason, e.g. "vLLM not installed") makes the verdict n.a.; so does a missing
    value. Rows without a target are informational (verdict "-").
    """
    ratio = None
    if value is not None and reference_value not in (None, 0) and unavailable is None:
        ratio = value / reference_value
    if unavailable is not None or (target is not None and ratio is None):
        reason = unavailable or "not measured"
        return Row(
            section,
            contender,
            measurement,
            value,
            unit,
            reference,
            ratio,
            str(target) if target else None,
            NOT_APPLICABLE,
            "; ".join(filter(None, [reason, note])),
        )
    verdict = NO_TARGET if target is None else (MET if target.holds(ratio) else MISSED)
    return Row(
        section, contender, measurement, value, unit, reference, ratio, str(target) if target else None, verdict, note
    )


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.2f} %"
    digits = 3 if abs(value) < 10 else 1
    return f"{value:.{digits}f} {unit}".strip()


def render_table(rows: Sequence[Row]) -> str:
    """A plain-text table: contender, measurement, value, ratio to the reference, target, verdict."""
    header = ("section", "contender", "measurement", "value", "ratio", "target", "verdict")
    lines = [header]
    for row in rows:
        ratio = f"{row.ratio:.2f}× {row.reference}" if row.ratio is not None else "-"
        verdict = f"{row.verdict} ({row.note})" if row.note else row.verdict
        lines.append(
            (
                row.section,
                row.contender,
                row.measurement,
                _format_value(row.value, row.unit),
                ratio,
                row.target or "-",
                verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = []
    for index, line in enumerate(lines):
        text.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
        if index == 0:
            text.append("  ".join("-" * width for width in widths) + "  " + "-" * 7)
    return "\n".join(text)


def build_report(
    machine: Mapping[str, Any], settings: Mapping[str, Any], raw: Mapping[str, Any], rows: Sequence[Row]
) -> dict[str, Any]:
    """The JSON document: machine, settings, raw measurements per section, rows and a verdict count."""
    counts = {verdict: sum(r.verdict == verdict for r in rows) for verdict in (MET, MISSED, NOT_APPLICABLE)}
    return {
        "schema": SCHEMA,
        "machine": dict(machine),
        "settings": dict(settings),
        "raw": dict(raw),
        "rows": [asdict(r) for r in rows],
        "verdicts": counts,
    }


ROW_TYPES: dict[str, tuple[type, ...]] = {
    "section": (str,),
    "contender": (str,),
    "measurement": (str,),
    "value": (int, float, type(None)),
    "unit": (str,),
    "reference": (str, type(None)),
    "ratio": (int, float, type(None)),
    "target": (str, type(None)),
    "verdict": (str,),
    "note": (str,),
}


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first key of ``report`` that breaks :data:`SCHEMA`."""
    if report.get("schema") != SCHEMA:
        raise ValueError(f"schema: expected {SCHEMA!r}, got {report.get('schema')!r}")
    for key in ("machine", "settings", "raw"):
        if not isinstance(report.get(key), dict):
            raise ValueError(f"{key}: expected an object")
    for key in ("cpu_model", "cores", "torch", "threads", "load_average"):
        if key not in report["machine"]:
            raise ValueError(f"machine.{key}: missing")
    if not isinstance(report.get("rows"), list):
        raise ValueError("rows: expected a list")
    for index, row in enumerate(report["rows"]):
        for key, types in ROW_TYPES.items():
            if key not in row or not isinstance(row[key], types):
                raise ValueError(f"rows[{index}].{key}: missing or of the wrong type")
        if row["verdict"] not in (MET, MISSED, NOT_APPLICABLE, NO_TARGET):
            raise ValueError(f"rows[{index}].verdict: unknown verdict {row['verdict']!r}")
        if isinstance(row["value"], float) and not math.isfinite(row["value"]):
            raise ValueError(f"rows[{index}].value: not finite")


def write_report(report: Mapping[str, Any], path: Path) -> None:
    """Validate and write ``report`` as indented JSON (atomically)."""
    validate_report(report)
    write_atomic(path, json.dumps(report, indent=1, default=str) + "\n")


def render_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of a JSON report (``report["rows"]``) as a Markdown table, for docs/performance.md."""
    lines = [
        "| section | contender | measurement | value | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio']:.2f}× {row['reference']}" if row["ratio"] is not None else "-"
        verdict = f"{row['verdict']} ({row['note']})" if row["note"] else row["verdict"]
        cells = (
            row["section"],
            row["contender"],
            row["measurement"],
            _format_value(row["value"], row["unit"]),
            ratio,
            row["target"] or "-",
            verdict,
        )
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
