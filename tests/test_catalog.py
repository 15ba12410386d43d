"""The benchmark catalog: one declaration per benchmark, read alike by data prepare, eval and the leaderboard."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tokenpo.core.catalog import CatalogError, columns, headlines, load_catalog, markdown
from tokenpo.evals.data.converters import CONVERTERS
from tokenpo.evals.data.mirror import MIRRORS
from tokenpo.evals.suites import available_suites, load_suite
from tokenpo.evals.tasks.configs import official_tasks_dir
from tokenpo.leaderboards.columns import load_columns

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog()


def test_docs_page_is_generated_from_the_catalog():
    page = ROOT / "docs" / "catalog.md"
    assert page.read_text() == markdown(CATALOG), "stale: run `python -m tokenpo.core.catalog > docs/catalog.md`"


def test_every_mirrored_benchmark_has_a_converter_and_no_converter_is_undeclared():
    assert set(MIRRORS) == set(CONVERTERS) == {"gsm8k", "mmlu", "gpqa", "truthfulqa", "ifeval", "humaneval", "mbpp"}


def test_the_leaderboard_reads_the_same_declarations_eval_and_prepare_read():
    assert load_columns() == columns(CATALOG)
    assert {b.name: b for b in CATALOG if b.data is not None} == MIRRORS


def _defined_by(patterns: tuple[str, ...]) -> set[str]:
    official = official_tasks_dir()
    names = set()
    for pattern in patterns:
        paths = sorted(official.glob(pattern))
        assert paths, f"{pattern}: no official task file matches (lm-eval renamed it?)"
        for path in paths:
            body = yaml.safe_load(path.read_text().replace("!function", "")) or {}
            names.add(body.get("group") or body.get("task"))
    return names


def test_each_column_is_run_by_the_official_task_files_of_the_catalog():
    # The first task of every column (the one our suites run) is defined by a task file the catalog
    # names, so an offline run scores the column from mirrored data; `sentiment` and the win rates are
    # our own judges'.
    defined = _defined_by(tuple(f for b in CATALOG for f in b.task_files))
    unrun = [b.name for b in columns(CATALOG) if b.tasks[0] not in defined]
    assert unrun == ["sentiment", "winrate", "lc_winrate"]


def test_headline_of_a_result_is_the_first_task_present_of_each_column():
    chosen = headlines(CATALOG, ["leaderboard_gpqa_diamond", "ifeval", "truthfulqa_gen", "mmlu_anatomy"])
    assert chosen == {
        "gpqa": {"task": "leaderboard_gpqa_diamond", "metrics": ["acc_norm,none"], "random": 0.25},
        "ifeval": {
            "task": "ifeval",
            "metrics": ["prompt_level_strict_acc,none", "inst_level_strict_acc,none"],
            "random": 0.0,
        },
    }


@pytest.mark.parametrize("suite", available_suites())
def test_suites_choose_tasks_not_headlines(suite, tmp_path):
    load_suite(suite)  # the built-in ones load
    own = tmp_path / "mine.yaml"
    own.write_text(
        yaml.safe_dump({"tasks": ["gpqa_diamond_zeroshot"], "headline": {"gpqa_diamond_zeroshot": "acc,none"}})
    )
    with pytest.raises(ValueError, match=r"mine.yaml: headline: a headline metric is declared once per benchmark"):
        load_suite(str(own))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"label": "X"}, "benchmarks.x: neither metrics (a leaderboard column) nor data (a mirror)"),
        ({"label": "X", "data": {"folder": "x"}}, "benchmarks.x.data.hub_id: missing"),
        ({"label": "X", "data": {"folder": "x", "hub_id": "o/x", "url": "u"}}, "benchmarks.x.data.url: unknown key"),
        ({"label": "X", "metrics": ["acc,none"], "random": 0.0}, "benchmarks.x.tasks: missing"),
        (
            {"label": "X", "data": {"folder": "x", "hub_id": "o/x"}, "task_files": []},
            "x.task_files: expected a non-empty",
        ),
    ],
)
def test_malformed_entries_are_refused_naming_the_key(tmp_path, entry, message):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": {"x": entry}}))
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_catalog(path)


def test_a_data_only_entry_is_a_mirror_not_a_column(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": {"x": {"label": "X", "data": {"folder": "x", "hub_id": "o/x"}}}}))
    (entry,) = load_catalog(path)
    assert entry.data.hub_id == "o/x" and not entry.is_column and columns((entry,)) == ()
