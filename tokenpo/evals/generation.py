"""Generation arguments (``--gen-kwargs``): lm-eval's spelling, and which value each generative task gets.

lm-eval applies its ``--gen_kwargs`` to every ``generate_until`` task, updating the task's own
``generation_kwargs``. Here the same arguments can come from three places, and a task gets, key by key:

1. the suite's own ``generation_kwargs`` for that task (``tasks: [{task: gsm8k, generation_kwargs: …}]``,
   which replace the task's): a suite that fixes a task's decoding keeps it;
2. else the evaluation's ``gen_kwargs`` (``harness eval --gen-kwargs``, ``eval.gen_kwargs``);
3. else the suite's ``gen_kwargs`` (every generative task of the suite);
4. else the task's own value.

:class:`GenerationPlan` applies that rule where lm-eval applies its own (to the loaded tasks, before
any request is built) and records, per task, the value each key got and where it came from.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenpo.evals.errors import EvalError

GENERATIVE = "generate_until"  # lm-eval's output type of the tasks generation arguments apply to
# Where a task's generation argument came from, as results.json records it (harness.gen_kwargs.tasks).
FROM_GIVEN, FROM_SUITE, FROM_SUITE_TASK = "gen_kwargs", "suite gen_kwargs", "suite task"


def parse_gen_kwargs(values: str | Sequence[str], where: str = "--gen-kwargs") -> dict[str, Any]:
    """``KEY=VALUE[,KEY=VALUE…]`` (several such arguments, or a JSON object) as a mapping, read as lm-eval
    0.4.13's command line reads its ``--gen_kwargs``, so that a user's ``lm_eval`` command carries over:
    commas inside brackets or quotes do not split (``until=["\\n\\n","Q:"]``); a value is ``true``/``false``,
    an integer, a float, a Python literal, else the text itself (``max_gen_toks=8`` → 8)."""
    parts = [values] if isinstance(values, str) else list(values)
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(_parse_part(part.strip(), where))
    problem = gen_kwargs_problem(merged)
    if problem:
        raise EvalError(where, "", problem)
    return merged


def gen_kwargs_problem(mapping: Mapping[str, Any]) -> str | None:
    """What is wrong with ``mapping`` as generation arguments (None: nothing); the keys are what lm-eval
    passes on to the model's ``generate``, so they must be names."""
    if not mapping:
        return "expected KEY=VALUE[,KEY=VALUE…] (e.g. max_gen_toks=8,temperature=0)"
    for key in mapping:
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
            return f"{str(key)!r} is not a generation argument name"
    return None


def prompt_settings_problem(
    gen_kwargs: Mapping[str, Any] | None, system_instruction: str | None
) -> tuple[str, str] | None:
    """``(key, problem)`` for the first bad one of a suite's or an evaluation's ``gen_kwargs`` and
    ``system_instruction`` (None: both fine), for their configuration's one-line error."""
    if gen_kwargs is not None and (problem := gen_kwargs_problem(gen_kwargs)):
        return "gen_kwargs", problem
    if system_instruction is not None and not system_instruction.strip():
        return "system_instruction", "expected text (null: none)"
    return None


def _parse_part(text: str, where: str) -> dict[str, Any]:
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise EvalError(where, text[:40], f"not a JSON object ({error.msg})") from None
        if not isinstance(value, dict):
            raise EvalError(where, text[:40], "expected a JSON object")
        return value
    parsed: dict[str, Any] = {}
    for item in _split_top_level(text):
        key, equals, value = item.partition("=")
        if not equals:
            raise EvalError(where, item, "expected KEY=VALUE")
        parsed[key.strip()] = _value(value)
    return parsed


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets, braces and quotes (lm-eval's ``split_top_level``)."""
    parts, current, depth, quote = [], [], 0, None
    for char in text:
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part]


def _value(text: str) -> Any:
    """One value as lm-eval's command line types it (``handle_cli_value_string``)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.isnumeric():
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass(frozen=True)
class GenerationPlan:
    """The generation arguments of one evaluation, from its three sources (see the module's rule)."""

    given: Mapping[str, Any] = field(default_factory=dict)  # the evaluation's gen_kwargs
    suite: Mapping[str, Any] = field(default_factory=dict)  # the suite's gen_kwargs
    per_task: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the suite's tasks' own

    @property
    def general(self) -> dict[str, Any]:
        """What every generative task gets but for the keys its suite entry sets: the suite's ``gen_kwargs``
        updated with the evaluation's (what results.json's ``config.gen_kwargs`` records)."""
        return {**self.suite, **self.given}

    def updates(self, task: str) -> dict[str, Any]:
        """The keys ``task``'s ``generation_kwargs`` are updated with (lm-eval's ``set_config(update=True)``)."""
        own = self.per_task.get(task, {})
        return {key: value for key, value in self.general.items() if key not in own}

    def apply(self, tasks: Mapping[str, Any]) -> None:
        """Update the generative ones of lm-eval's loaded ``tasks`` (name → Task), as ``simple_evaluate``
        does with its ``gen_kwargs``, but task by task."""
        for name, task in tasks.items():
            update = self.updates(name)
            if update and task.get_config("output_type") == GENERATIVE:
                task.set_config(key="generation_kwargs", value=update, update=True)

    def record(self, configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per generative task of lm-eval's ``configs`` (its results' ``configs``): each key set by the
        suite or the evaluation, ``{"value": what the task ran with, "from": where it came from}``, and for
        a key the suite's task entry kept, ``"instead_of"``: the value the evaluation asked for."""
        recorded: dict[str, dict[str, Any]] = {}
        for task, config in configs.items():
            if config.get("output_type") != GENERATIVE:
                continue
            used = config.get("generation_kwargs") or {}
            entries = {key: self._origin(task, key, used.get(key)) for key in self._keys(task)}
            if entries:
                recorded[task] = entries
        return recorded

    def _keys(self, task: str) -> list[str]:
        return list(dict.fromkeys([*self.per_task.get(task, {}), *self.general]))

    def _origin(self, task: str, key: str, value: Any) -> dict[str, Any]:
        own = self.per_task.get(task, {})
        if key not in own:
            return {"value": value, "from": FROM_GIVEN if key in self.given else FROM_SUITE}
        entry = {"value": value, "from": FROM_SUITE_TASK}
        if key in self.general and self.general[key] != own[key]:
            entry["instead_of"] = self.general[key]
        return entry


def applying_to_loads(manager: Any, plan: GenerationPlan) -> Any:
    """lm-eval's ``TaskManager`` ``manager``, its ``load`` applying ``plan`` to the tasks it loads.

    ``simple_evaluate`` loads the tasks through the manager it is given, then builds their requests: this
    is the one point between the two where a plan can act, and the one where lm-eval applies its own
    ``gen_kwargs`` (one value for every task, which would overrule a suite's own per-task values)."""
    load = manager.load

    def load_and_apply(*args: Any, **kwargs: Any) -> Any:
        loaded = load(*args, **kwargs)
        plan.apply(loaded["tasks"])
        return loaded

    manager.load = load_and_apply
    return manager
