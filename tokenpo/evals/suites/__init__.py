"""Suites: named YAML lists of lm-eval tasks, with optional per-task overrides.

A benchmark's headline metric is not a suite's to choose: it is declared once, in the catalog
(``tokenpo/core/catalog.yaml``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.core.config import field_error, from_mapping, read_yaml
from tokenpo.evals.errors import EvalError
from tokenpo.evals.generation import prompt_settings_problem

SUITES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class TaskSettings:
    """A task run with settings of its own: lm-eval's definition of ``task`` with these keys set."""

    task: str = field(metadata={"help": "the lm-eval task (or group) name"})
    num_fewshot: int | None = field(default=None, metadata={"help": "few-shot examples for this task"})
    generation_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "replaces the task's generation_kwargs (until, max_gen_toks, …)"}
    )
    repeats: int | None = field(default=None, metadata={"help": "answers generated per document"})

    def __post_init__(self) -> None:
        if not self.task.strip():
            raise field_error("task", "expected a task name")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise field_error("num_fewshot", "expected a non-negative integer")
        if self.repeats is not None and self.repeats < 1:
            raise field_error("repeats", "expected a positive integer")

    def as_override(self) -> dict[str, Any]:
        """The keys the suite sets, as lm-eval's task YAML spells them."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class SuiteFile:
    """A suite YAML file (the suite's name is the file's)."""

    tasks: list[str | TaskSettings] = field(
        metadata={"help": "lm-eval task or group names, or mappings {task: NAME, ...} with settings of their own"}
    )
    description: str = field(default="", metadata={"help": "one line on what the suite is for"})
    limit: int | None = field(default=None, metadata={"help": "at most N documents per task; null: all"})
    num_fewshot: int | None = field(
        default=None, metadata={"help": "few-shot examples for every task; null: each task's own"}
    )
    apply_chat_template: bool = field(default=False, metadata={"help": "format prompts with the model's chat template"})
    gen_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "generation arguments for every generative task (lm-eval's --gen_kwargs, as a mapping); "
            "a task's own generation_kwargs above win, the evaluation's gen_kwargs win over these"
        },
    )
    system_instruction: str | None = field(
        default=None, metadata={"help": "a system instruction before every prompt (lm-eval's --system_instruction)"}
    )
    fewshot_as_multiturn: bool | None = field(
        default=None,
        metadata={
            "help": "with the chat template: few-shot examples as turns of the chat (true) or one user turn "
            "(false); null: lm-eval's default (true)"
        },
    )

    def __post_init__(self) -> None:
        _check_tasks(self.tasks)
        if self.limit is not None and self.limit < 1:
            raise field_error("limit", "expected a positive integer")
        if problem := prompt_settings_problem(self.gen_kwargs, self.system_instruction):
            raise field_error(*problem)


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: list[str | dict[str, Any]]
    description: str = ""
    limit: int | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool = False
    gen_kwargs: dict[str, Any] | None = None
    system_instruction: str | None = None
    fewshot_as_multiturn: bool | None = None

    def task_generation_kwargs(self) -> dict[str, dict[str, Any]]:
        """The tasks given ``generation_kwargs`` of their own, and those (they replace the task's)."""
        return {
            s["task"]: s["generation_kwargs"] for s in self.tasks if isinstance(s, dict) and s.get("generation_kwargs")
        }


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def task_name(spec: str | dict[str, Any]) -> str:
    return spec if isinstance(spec, str) else spec["task"]


def parse_tasks(where: str, tasks: Any) -> list[str | dict[str, Any]]:
    """Validate a task list: names, or mappings ``{task: NAME, num_fewshot|generation_kwargs|repeats: …}``."""
    return _plain(from_mapping(_TaskList, {"tasks": tasks}, where, error=EvalError).tasks)


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name (``smoke``, ``paper``) or a suite YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise EvalError("--suite", name_or_path, f"no such suite; built-in: {', '.join(available_suites())}")
    raw = read_yaml(path, error=EvalError)
    if "headline" in raw:
        raise EvalError(
            str(path), "headline", "a headline metric is declared once per benchmark, in tokenpo/core/catalog.yaml"
        )
    suite = from_mapping(SuiteFile, raw, str(path), error=EvalError)
    return Suite(
        name=path.stem,
        tasks=_plain(suite.tasks),
        description=suite.description,
        limit=suite.limit,
        num_fewshot=suite.num_fewshot,
        apply_chat_template=suite.apply_chat_template,
        gen_kwargs=suite.gen_kwargs,
        system_instruction=suite.system_instruction,
        fewshot_as_multiturn=suite.fewshot_as_multiturn,
    )


@dataclass(frozen=True)
class _TaskList:
    tasks: list[str | TaskSettings]

    def __post_init__(self) -> None:
        _check_tasks(self.tasks)


def _check_tasks(tasks: list[str | TaskSettings]) -> None:
    if not tasks:
        raise field_error("tasks", "expected a non-empty list")
    for index, spec in enumerate(tasks):
        if isinstance(spec, str) and not spec.strip():
            raise field_error(f"tasks[{index}]", "expected a task name or a mapping with a 'task' name")


def _plain(tasks: list[str | TaskSettings]) -> list[str | dict[str, Any]]:
    return [spec.strip() if isinstance(spec, str) else spec.as_override() for spec in tasks]
