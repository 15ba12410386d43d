"""Load a YAML file plus ``key=value`` overrides into a validated, typed dataclass.

Generic over any tree of dataclasses whose fields are annotated with: ``bool``, ``int``,
``float``, ``str``, ``Literal[...]``, ``Optional[X]``, ``list[X]``, ``tuple[X, ...]``,
``dict[str, X]``, a nested dataclass, or a union of dataclasses told apart by a ``Literal``
field they share (e.g. ``method: {name: sparsepo, ...}``). Every problem becomes one
:class:`ConfigError` line naming the source and the key path::

    cfg.yaml: method.beta: expected a number, got 'abc'

Every package reads its YAML through this module (``harness train`` and ``harness run`` configs,
suites, the benchmark catalog); a package that wants its own error type passes ``error=``, a callable
``(source, key, problem)`` such as a :class:`ConfigError` subclass.

A key a dataclass has renamed (its class attribute ``renamed_keys``, ``{old: new}``) is reported
as ``cfg.yaml: method.alpha: renamed to method.kl_alpha``.

A dataclass validates its own values in ``__post_init__`` by raising ``ValueError``; when that
error has a ``field`` attribute (the name of the offending field, see :func:`field_error`) the
path ends with it.

A field's help (``field(metadata={"help": ...})``, read with :func:`field_help`) is what the
command line and ``docs/configuration.md`` say about it.

Overrides use dotted paths (``training.learning_rate=5e-7``, ``method.name=tdpo``); the value
is read as YAML, so ``true``, ``3``, ``[1, 2]`` and ``null`` have their YAML meaning.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, Union

import yaml

from tokenpo.core.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """``SOURCE: KEY: problem``, or ``SOURCE: problem`` when the whole source is wrong (``key`` empty)."""

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


class ErrorType(Protocol):
    """What ``error=`` takes: :class:`ConfigError`, a subclass, or any package's error built alike."""

    def __call__(self, source: str, key: str, problem: str) -> Exception: ...


class _ConfigProblem(Exception):
    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


class _FieldError(ValueError):
    def __init__(self, field_name: str, problem: str):
        self.field, self.problem = field_name, problem
        super().__init__(f"{field_name}: {problem}")


def field_error(field_name: str, problem: str) -> ValueError:
    """The error a dataclass's ``__post_init__`` raises for a bad value; the loader names its key."""
    return _FieldError(field_name, problem)


def field_help(field: dataclasses.Field) -> str:
    """The help a config field carries in its metadata (``""`` when it has none)."""
    return field.metadata.get("help", "")


def read_yaml(path: str | Path, error: ErrorType = ConfigError) -> dict[str, Any]:
    """The mapping at the top of the YAML file ``path`` (empty for an empty file)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as problem:
        raise error(source, "", f"cannot read the file: {problem.strerror or problem}") from problem
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise error(source, "", f"invalid YAML: {_one_line(problem)}") from problem
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(source, "", f"expected a mapping of keys at the top, got {_kind(data)}")
    return data


def load_config(
    cls: type[T], path: str | Path | None, overrides: Sequence[str] = (), error: ErrorType = ConfigError
) -> T:
    """``cls`` built from the YAML mapping in ``path`` (or an empty mapping) with ``overrides`` applied."""
    source = str(path) if path is not None else "config"
    data: dict[str, Any] = read_yaml(path, error) if path is not None else {}
    overridden: dict[str, str] = {}
    for override in overrides:
        key, value = parse_override(override, error)
        _set_path(data, key, value, source, error)
        overridden[key] = override
    try:
        return _convert(cls, data, "")
    except _ConfigProblem as problem:
        origin = next(
            (
                f" (override {text!r})"
                for key, text in overridden.items()
                if problem.path == key or problem.path.startswith(key + ".")
            ),
            "",
        )
        raise error(f"{source}{origin}", problem.path, problem.problem) from None


def parse_override(text: str, error: ErrorType = ConfigError) -> tuple[str, Any]:
    """``'a.b=value'`` → ``('a.b', value read as YAML)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise error(f"override {text!r}", "", "expected KEY=VALUE with KEY a dotted path such as method.beta")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as problem:
        raise error(f"override {text!r}", "", f"the value is not valid YAML: {_one_line(problem)}") from problem
    return key, value


def from_mapping(cls: type[T], data: Any, source: str, path: str = "", error: ErrorType = ConfigError) -> T:
    """``cls`` from plain ``data`` (as YAML gives it) found at key ``path`` of ``source``; a problem
    raises ``error(source, key path, problem)`` (for configs assembled from parts, e.g. per-method
    overrides, or read in parts, e.g. the catalog's entries)."""
    try:
        return _convert(cls, data, path)
    except _ConfigProblem as problem:
        raise error(source, problem.path, problem.problem) from None


def to_mapping(config: Any) -> Any:
    """Plain data (dicts, lists, scalars) for a config tree: what ``from_mapping`` reads back."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_mapping(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_mapping(item) for item in config]
    if isinstance(config, dict):
        return {key: to_mapping(value) for key, value in config.items()}
    return config


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_mapping(config), sort_keys=False, default_flow_style=None)


def _set_path(data: dict, key: str, value: Any, source: str, error: ErrorType) -> None:
    node = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise error(source, where, f"is {_kind(child)}, so {key} cannot be set inside it")
        node = child
    node[parts[-1]] = value


def _convert(annotation: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        return _convert_dataclass(annotation, value, path)
    if origin in (Union, types.UnionType):
        return _convert_union(args, value, path)
    if origin is Literal:
        if any(value == arg and type(value) is type(arg) for arg in args):
            return value
        choices = ", ".join(repr(arg) if not isinstance(arg, str) else arg for arg in args)
        raise _ConfigProblem(path, f"expected one of {choices}; got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _ConfigProblem(path, f"expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _ConfigProblem(path, f"expected an integer, got {value!r}")
    if annotation is float:
        return _to_float(value, path)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _ConfigProblem(path, f"expected a string, got {value!r}")
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list):
            raise _ConfigProblem(path, f"expected a list, got {_kind(value)} {value!r}")
        item_type = args[0] if args else Any
        items = [_convert(item_type, item, f"{path}[{index}]") for index, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _ConfigProblem(path, f"expected a mapping, got {_kind(value)} {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(key): _convert(value_type, item, f"{path}.{key}") for key, item in value.items()}
    raise TypeError(f"{path}: unsupported annotation {annotation!r} in a config dataclass")


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    # PyYAML reads 1e-5 (no dot) as a string; a number written that way is still a number.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _ConfigProblem(path, f"expected a number, got {value!r}")


def _convert_union(args: tuple, value: Any, path: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise _ConfigProblem(path, "a value is required here, got null")
    options = [arg for arg in args if arg is not type(None)]
    if len(options) == 1:
        return _convert(options[0], value, path)
    # A mapping is meant for the dataclass members (e.g. a task: a name, or a mapping of its settings).
    classes = [option for option in options if dataclasses.is_dataclass(option)]
    if classes and (isinstance(value, dict) or len(classes) == len(options)):
        if len(classes) == 1:
            return _convert_dataclass(classes[0], value, path)
        return _convert_tagged(classes, value, path)
    problems = []
    for option in options:
        try:
            return _convert(option, value, path)
        except _ConfigProblem as problem:
            problems.append(problem.problem)
    raise _ConfigProblem(path, " or ".join(problems))


def _convert_tagged(options: list[type], value: Any, path: str) -> Any:
    """A union of dataclasses: the member whose Literal tag field equals the value's tag."""
    tag = _shared_tag(options)
    if not isinstance(value, dict):
        raise _ConfigProblem(path, f"expected a mapping with a {tag!r} key, got {_kind(value)} {value!r}")
    by_tag = {}
    for option in options:
        for literal in typing.get_args(typing.get_type_hints(option)[tag]):
            by_tag[literal] = option
    if tag not in value:
        raise _ConfigProblem(f"{path}.{tag}" if path else tag, f"required key is missing; one of {', '.join(by_tag)}")
    if value[tag] not in by_tag:
        raise _ConfigProblem(
            f"{path}.{tag}" if path else tag, f"expected one of {', '.join(by_tag)}; got {value[tag]!r}"
        )
    return _convert_dataclass(by_tag[value[tag]], value, path)


def _shared_tag(options: list[type]) -> str:
    hints = [typing.get_type_hints(option) for option in options]
    for name in hints[0]:
        if all(typing.get_origin(h.get(name)) is Literal for h in hints):
            return name
    raise TypeError(f"the dataclasses {options} share no Literal field to tell them apart")


def _convert_dataclass(cls: type, value: Any, path: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _ConfigProblem(path or cls.__name__, f"expected a mapping of keys, got {_kind(value)} {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    for key in value:
        if key not in fields:
            renamed = getattr(cls, "renamed_keys", {}).get(key)  # a dataclass's {old key: new key}
            if renamed:
                raise _ConfigProblem(f"{prefix}{key}", f"renamed to {prefix}{renamed}")
            raise _ConfigProblem(f"{prefix}{key}", f"unknown key; expected one of: {', '.join(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{prefix}{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            if dataclasses.is_dataclass(hints[name]):
                kwargs[name] = _convert_dataclass(hints[name], {}, f"{prefix}{name}")
            else:
                raise _ConfigProblem(f"{prefix}{name}", "required key is missing")
    try:
        return cls(**kwargs)
    except ValueError as error:
        field_name = getattr(error, "field", None)
        where = f"{prefix}{field_name}" if field_name else (path or cls.__name__)
        problem = getattr(error, "problem", None) or str(error)
        raise _ConfigProblem(where, problem) from None


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
