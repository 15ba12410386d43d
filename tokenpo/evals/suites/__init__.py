"""Suites: named YAML lists of lm-eval tasks, with optional per-task overrides.

A benchmark's headline metric is not a suite's to choose: it is declared once, in the catalog
(``tokenpo/core/benchmarks.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tokenpo.evals.errors import EvalError

SUITES_DIR = Path(__file__).parent
SUITE_KEYS = {"description", "tasks", "limit", "num_fewshot", "apply_chat_template"}
TASK_OVERRIDE_KEYS = {"task", "num_fewshot", "generation_kwargs", "repeats"}


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: list[str | dict[str, Any]]
    description: str = ""
    limit: int | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool = False


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def task_name(spec: str | dict[str, Any]) -> str:
    return spec if isinstance(spec, str) else spec["task"]


def parse_tasks(where: str, tasks: Any) -> list[str | dict[str, Any]]:
    """Validate a task list: names, or mappings ``{task: NAME, num_fewshot|generation_kwargs|repeats: …}``."""
    if not isinstance(tasks, list) or not tasks:
        raise EvalError(where, "tasks", "expected a non-empty list")
    parsed = []
    for index, spec in enumerate(tasks):
        at = f"tasks[{index}]"
        if isinstance(spec, str) and spec.strip():
            parsed.append(spec.strip())
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("task"), str):
            raise EvalError(where, at, "expected a task name or a mapping with a 'task' name")
        unknown = sorted(set(spec) - TASK_OVERRIDE_KEYS)
        if unknown:
            raise EvalError(
                where, f"{at}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(TASK_OVERRIDE_KEYS))}"
            )
        if "num_fewshot" in spec and (not isinstance(spec["num_fewshot"], int) or spec["num_fewshot"] < 0):
            raise EvalError(where, f"{at}.num_fewshot", "expected a non-negative integer")
        if "repeats" in spec and (not isinstance(spec["repeats"], int) or spec["repeats"] < 1):
            raise EvalError(where, f"{at}.repeats", "expected a positive integer")
        if "generation_kwargs" in spec and not isinstance(spec["generation_kwargs"], dict):
            raise EvalError(where, f"{at}.generation_kwargs", "expected a mapping")
        parsed.append(dict(spec))
    return parsed


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name (``smoke``, ``paper``) or a suite YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise EvalError("--suite", name_or_path, f"no such suite; built-in: {', '.join(available_suites())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise EvalError(str(path), "yaml", str(error).splitlines()[0]) from error
    if not isinstance(raw, dict):
        raise EvalError(str(path), "suite", "expected a mapping")
    if "headline" in raw:
        raise EvalError(
            str(path), "headline", "a headline metric is declared once per benchmark, in tokenpo/core/benchmarks.yaml"
        )
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise EvalError(str(path), unknown[0], f"unknown key; allowed: {', '.join(sorted(SUITE_KEYS))}")
    limit = raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise EvalError(str(path), "limit", "expected a positive integer")
    return Suite(
        name=path.stem,
        tasks=parse_tasks(str(path), raw.get("tasks")),
        description=str(raw.get("description", "")),
        limit=limit,
        num_fewshot=raw.get("num_fewshot"),
        apply_chat_template=bool(raw.get("apply_chat_template", False)),
    )
