"""Validate raw records into preference examples, in TRL's standard and conversational formats.

Formats (``fmt``):
- ``standard``: ``prompt``, ``chosen``, ``rejected`` strings.
- ``conversational``: ``chosen`` and ``rejected`` lists of ``{role, content}`` messages, with a
  ``prompt`` list too, or without one (an implicit prompt: the messages both share).
- ``hh-rlhf``: Anthropic HH dialogues in ``chosen``/``rejected`` ("\\n\\nHuman: … \\n\\nAssistant: …");
  the shared prefix up to and including the last shared "\\n\\nAssistant:" is the prompt.
- ``hh-rlhf-chat``: the same split, with the prompt's turns as messages so the model's chat
  template renders them (what an instruct model was trained on).
- ``auto``: decided per record: lists are conversational, an HH dialogue without ``prompt`` is
  ``hh-rlhf``, anything else is standard.

Any plain-text record may carry ``chosen_truncated`` / ``rejected_truncated`` (booleans, default false):
true says the completion was cut at a length limit, so tokenisation appends no end-of-text to it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from tokenpo.trainers.data.errors import DataError
from tokenpo.trainers.data.readers import RawRecord, data_format

Message = dict[str, str]
Text = str | list[Message]
FORMATS = ("auto", "standard", "conversational", "hh-rlhf", "hh-rlhf-chat")
ROLES = ("system", "user", "assistant", "tool")
HH_ASSISTANT = "\n\nAssistant:"
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
TRUNCATED_FIELDS = ("chosen_truncated", "rejected_truncated")
PLAIN_TEXT_ONLY = "truncated completions are supported for plain-text records only"


@dataclass(frozen=True)
class PreferenceExample:
    """A prompt with a chosen and a rejected completion, and where it came from."""

    prompt: Text
    chosen: Text
    rejected: Text
    source: str = ""
    location: int | str | None = None
    # True: the completion was cut at a length limit (no end-of-text of its own), so none is appended.
    chosen_truncated: bool = False
    rejected_truncated: bool = False

    def __post_init__(self) -> None:
        # A chat template closes every message with its end-of-turn token; it cannot leave one open.
        if self.conversational:
            for field in TRUNCATED_FIELDS:
                if getattr(self, field):
                    raise DataError(self.source, self.location, field, PLAIN_TEXT_ONLY)

    @property
    def conversational(self) -> bool:
        return isinstance(self.chosen, list)


def mark_truncated(example: PreferenceExample) -> PreferenceExample:
    """``example`` with both completions marked cut at a length limit; conversational ones unchanged
    (their chat template writes the end of every turn)."""
    if example.conversational:
        return example
    return dataclasses.replace(example, chosen_truncated=True, rejected_truncated=True)


def parse_record(raw: RawRecord, fmt: str = "auto") -> PreferenceExample:
    """The validated example in ``raw``, or a :class:`DataError` naming the field that is wrong."""
    if isinstance(raw.value, DataError):
        raise raw.value
    record = raw.value

    def fail(field: str, problem: str) -> DataError:
        return DataError(raw.source, raw.location, field, problem)

    kind = _detect(record) if fmt == "auto" else fmt
    if kind not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; expected one of {FORMATS}")
    for field in ("chosen", "rejected") if kind != "standard" else ("prompt", "chosen", "rejected"):
        if field not in record:
            raise fail(field, "missing")

    if kind in ("hh-rlhf", "hh-rlhf-chat"):
        prompt, chosen, rejected = _split_hh(record, fail)
        if kind == "hh-rlhf-chat":
            prompt, chosen, rejected = _hh_messages(prompt), _reply(chosen), _reply(rejected)
    elif kind == "standard":
        prompt, chosen, rejected = (_string(record, field, fail) for field in ("prompt", "chosen", "rejected"))
    else:
        chosen, rejected = _messages(record, "chosen", fail), _messages(record, "rejected", fail)
        if "prompt" in record and record["prompt"] is not None:
            prompt = _messages(record, "prompt", fail)
        else:
            prompt, chosen, rejected = _implicit_prompt(chosen, rejected, fail)

    for field, completion in (("chosen", chosen), ("rejected", rejected)):
        if _is_empty(completion):
            raise fail(field, "empty completion")
    if chosen == rejected:
        raise fail("rejected", "identical to chosen")
    csv = data_format(raw.source) == "csv"
    chosen_truncated, rejected_truncated = (_flag(record, field, fail, csv) for field in TRUNCATED_FIELDS)
    return PreferenceExample(prompt, chosen, rejected, raw.source, raw.location, chosen_truncated, rejected_truncated)


def _detect(record: dict[str, Any]) -> str:
    chosen = record.get("chosen")
    if isinstance(chosen, list):
        return "conversational"
    if "prompt" not in record and isinstance(chosen, str) and chosen.startswith("\n\nHuman:"):
        return "hh-rlhf"
    return "standard"


def _string(record: dict[str, Any], field: str, fail) -> str:
    value = record[field]
    if not isinstance(value, str):
        raise fail(field, f"expected a string, got {_type_name(value)}")
    return value


def _flag(record: dict[str, Any], field: str, fail, csv: bool) -> bool:
    """An optional boolean field: absent or null is false. CSV has only text: there true/false (any case)
    or an empty cell."""
    value = record.get(field)
    if csv and isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
        return value.strip().lower() == "true"
    if value is None:
        return False
    if not isinstance(value, bool):
        raise fail(field, f"expected true or false, got {_type_name(value)}")
    return value


def _messages(record: dict[str, Any], field: str, fail) -> list[Message]:
    value = record[field]
    if not isinstance(value, list):
        raise fail(field, f"expected a list of messages, got {_type_name(value)}")
    for index, message in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(message, dict):
            raise fail(where, f"expected a message object, got {_type_name(message)}")
        for key in ("role", "content"):
            if key not in message:
                raise fail(f"{where}.{key}", "missing")
            if not isinstance(message[key], str):
                raise fail(f"{where}.{key}", f"expected a string, got {_type_name(message[key])}")
        if message["role"] not in ROLES:
            raise fail(f"{where}.role", f"unknown role {message['role']!r}; expected one of {', '.join(ROLES)}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _implicit_prompt(chosen: list[Message], rejected: list[Message], fail):
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise fail("prompt", "missing, and chosen and rejected share no messages to take it from")
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _split_hh(record: dict[str, Any], fail) -> tuple[str, str, str]:
    chosen, rejected = _string(record, "chosen", fail), _string(record, "rejected", fail)
    if chosen == rejected:
        raise fail("rejected", "identical to chosen")
    shared = os.path.commonprefix([chosen, rejected])  # noqa: RUF071 (character-wise is what we want)
    cut = shared.rfind(HH_ASSISTANT)
    if cut < 0:
        raise fail("chosen", 'chosen and rejected share no "\\n\\nAssistant:" turn to split the prompt at')
    cut += len(HH_ASSISTANT)
    return chosen[:cut], chosen[cut:], rejected[cut:]


def _hh_messages(prompt: str) -> list[Message]:
    """'\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:' → user/assistant/user messages."""
    parts = _HH_TURN.split(prompt)  # ['', 'Human', 'a', 'Assistant', 'b', ..., 'Assistant', '']
    messages = [
        {"role": "user" if speaker == "Human" else "assistant", "content": text.strip()}
        for speaker, text in zip(parts[1::2], parts[2::2])
    ]
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()  # the prompt ends with the open "Assistant:" turn the completion fills
    return messages


def _reply(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text.strip()}]


def _is_empty(completion: Text) -> bool:
    if isinstance(completion, str):
        return not completion.strip()
    return not completion or all(not message["content"].strip() for message in completion)


def _type_name(value: Any) -> str:
    return (
        "null"
        if value is None
        else {"str": "string", "dict": "object", "list": "list"}.get(type(value).__name__, type(value).__name__)
    )
