"""docs/configuration.md: every config section and key, generated from the dataclasses that validate them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tokenpo.core.config import field_help
from tokenpo.harness.configdoc import SECTIONS, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_docs_page_is_generated_from_the_config_dataclasses():
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text() == markdown(), "stale: run `python -m tokenpo.harness.configdoc > docs/configuration.md`"


def test_every_documented_key_has_help():
    fields = [(title, field) for title, cls, _ in SECTIONS for field in dataclasses.fields(cls)]
    assert [f"{title}: {field.name}" for title, field in fields if not field_help(field)] == []


def test_nested_sections_are_documented_where_they_are_used():
    page = markdown()
    assert "| `lora` | section [training.lora](#traininglora) or null | `null` |" in page
    assert "| `max_length` | integer | `1024` |" in page and "| `learning_rate` | number | `1.0e-06` |" in page
    assert "| `data` | section [data](#data) | required |" in page  # one data block, for train and run alike
