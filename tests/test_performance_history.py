"""docs/bench/history.json (the bench's run history) and docs/performance.md agree: every record is
well-formed, every raw bench output in docs/bench/ belongs to a record, and every figure of the
page's latest-results table is one of the cited record's figures, so the page cannot drift from the
history. Reads files only (json, re): no model, no bench."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "docs" / "bench"
HISTORY = BENCH / "history.json"
PAGE = REPO / "docs" / "performance.md"
NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?")


@pytest.fixture(scope="module")
def history() -> list[dict]:
    records = json.loads(HISTORY.read_text(encoding="utf-8"))
    assert isinstance(records, list) and records
    return records


def raw_files(record: dict) -> list[str]:
    raw = record.get("raw") or []
    return [raw] if isinstance(raw, str) else list(raw)


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of the text, as rows of cells (header first, the |---| rule dropped)."""
    found, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            found.append([row for row in current if not all(set(c) <= set("-: ") for c in row)])
            current = []
    return found


def section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no '## {heading}' section in {PAGE.name}"
    return match.group(1)


def test_every_record_is_well_formed(history):
    for record in history:
        rid = record.get("id")
        assert isinstance(rid, str) and rid, record
        for field in ("date", "title", "notes"):
            assert isinstance(record.get(field), str) and record[field].strip(), (rid, field)
        date.fromisoformat(record["date"])
        figures = record.get("figures")
        assert isinstance(figures, dict) and figures, (rid, "figures")
        for name, value in figures.items():
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (rid, name, value)
            assert math.isfinite(value), (rid, name, value)
        assert isinstance(record.get("verdicts", {}), dict), (rid, "verdicts")
        assert record.get("issue") is None or isinstance(record["issue"], int), (rid, "issue")


def test_ids_are_unique(history):
    ids = [record["id"] for record in history]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_raw_file_exists(history):
    for record in history:
        for name in raw_files(record):
            assert "/" not in name and (BENCH / name).is_file(), (record["id"], name)


def test_every_raw_run_file_belongs_to_a_record(history):
    referenced = {name for record in history for name in raw_files(record)}
    on_disk = {path.name for path in BENCH.glob("run*.json")}
    assert on_disk, "no raw run files in docs/bench/"
    assert on_disk <= referenced, sorted(on_disk - referenced)


def test_latest_results_table_figures_are_in_the_history(history):
    by_id = {record["id"]: record for record in history}
    table = tables(section(PAGE.read_text(encoding="utf-8"), "Latest results"))[0]
    header, rows = table[0], table[1:]
    assert header == ["target", "latest", "verdict", "run", "date"], header
    assert len(rows) >= 10
    checked = 0
    for row in rows:
        assert len(row) == len(header), row
        target, latest, verdict, run, when = row
        rid = run.strip("`")
        assert rid in by_id, f"{target}: no record {rid!r} in {HISTORY.name}"
        record = by_id[rid]
        assert when == record["date"], (target, when, record["date"])
        assert verdict.split(" (")[0] in ("met", "missed", "n.a.", "–", "stale"), (target, verdict)
        if verdict in ("met", "missed"):
            assert verdict in record["verdicts"].values(), (target, rid, verdict)
        values = list(record["figures"].values())
        for shown in NUMBER.findall(latest):
            number = float(shown.replace(",", ""))
            assert any(math.isclose(v, number, rel_tol=0, abs_tol=1e-9) for v in values), (
                f"{target}: {shown} is not among {rid}'s figures in {HISTORY.name}"
            )
            checked += 1
    assert checked >= len(rows) - 2


def test_tables_are_well_formed():
    for table in tables(PAGE.read_text(encoding="utf-8")):
        widths = {len(row) for row in table}
        assert len(widths) == 1, table[0]


def test_links_into_the_page_resolve():
    """Anchors other documents link to (performance.md#...) exist: a heading's slug or an <a id>."""
    text = PAGE.read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)
    }
    anchors |= set(re.findall(r'<a id="([^"]+)"', text))
    sources = [*REPO.glob("*.md"), *(REPO / "docs").rglob("*.md")]
    for source in sources:
        for anchor in re.findall(r"performance\.md#([\w-]+)", source.read_text(encoding="utf-8")):
            assert anchor in anchors, (source.relative_to(REPO).as_posix(), anchor)


def test_the_page_ends_by_pointing_to_the_history():
    last = PAGE.read_text(encoding="utf-8").strip().split("\n\n")[-1]
    assert "docs/bench/history.json" in last
