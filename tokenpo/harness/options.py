"""Command-line options made from config fields, so a default and its help live only in the dataclass.

``add_field_options(parser, TrainingConfig, "max_length", "max_prompt_length")`` adds
``--max-length`` and ``--max-prompt-length`` with the fields' types, defaults and help; a
``Literal`` field gets its values as choices, a ``bool`` field that defaults to false a flag.
The options are read as ``args.max_length`` etc., the fields' own names. ``aliases`` gives a field
more spellings (``{"batch_size": ("--batch_size",)}``: lm-eval's, so its command lines carry over).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tokenpo.core.config import field_help


def add_field_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *names: str,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """One option per field of ``cls`` named in ``names`` (``--snake-name``, and its ``aliases``), in that order."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in names:
        field = fields[name]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        flags = ["--" + name.replace("_", "-"), *(aliases or {}).get(name, ())]
        annotation = _without_none(hints[name])
        help_text = field_help(field)
        if annotation is bool:
            if default is not False:
                raise TypeError(f"{cls.__name__}.{name}: a flag's field must default to false")
            parser.add_argument(*flags, dest=name, action="store_true", help=help_text)
            continue
        if typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
            kind = type(choices[0])
        elif annotation in (int, float, str):
            choices, kind = None, annotation
        elif (words := _words_besides_int(annotation)) is not None:
            choices, kind = None, _int_or(words)
        else:
            raise TypeError(f"{cls.__name__}.{name}: {annotation!r} has no command-line form")
        if default is None:
            help_text = help_text.replace("null:", "not given:")  # the help speaks YAML; here null is no option
        else:
            help_text = f"{help_text} (default: {default})"
        parser.add_argument(*flags, dest=name, type=kind, choices=choices, default=default, help=help_text)


def _words_besides_int(annotation: Any) -> tuple[str, ...] | None:
    """The words of an ``int | Literal["auto", …]`` field (None for any other type)."""
    args = tuple(arg for arg in typing.get_args(annotation) if arg is not type(None))
    literals = [arg for arg in args if typing.get_origin(arg) is Literal]
    if int not in args or len(literals) != 1 or len(args) != 2:
        return None
    return typing.get_args(literals[0])


def _int_or(words: tuple[str, ...]):
    """An option type reading an integer or one of ``words`` (e.g. ``--batch-size 4`` or ``auto``)."""

    def read(text: str) -> int | str:
        if text in words:
            return text
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer or {' or '.join(words)}, got {text!r}") from None

    read.__name__ = "integer or " + "/".join(words)
    return read


def _without_none(annotation: Any) -> Any:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return args[0] if type(None) in typing.get_args(annotation) and len(args) == 1 else annotation
