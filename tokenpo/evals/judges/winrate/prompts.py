"""The prompts a win rate is measured on: each a :class:`Prompt` with an id stable across runs.

Sets (:func:`load_prompt_set` picks one by its spec):

- ``hh-helpful``: Anthropic HH helpful-base, test split, as in the DPO paper's single-turn dialogue
  evaluation: the first human turn of each dialogue (``chosen`` from ``"\\n\\nHuman:"`` up to the first
  ``"\\n\\nAssistant:"``), whitespace-stripped, duplicates dropped (the first occurrence kept, in file
  order). The id is ``hh-helpful-<i>``, ``i`` the 0-based line of that first occurrence, so ids do not
  shift when ``limit`` or deduplication changes.
- ``ifeval``: IFEval's prompts (``key``, ``prompt``), id ``ifeval-<key>``.
- a path to a ``.jsonl`` file (optionally ``.gz``): records with ``prompt`` and an optional ``id``
  (string or integer); without one the id is ``line-<n>``, ``n`` the 1-based line.
- ``hub:ORG/NAME[:SPLIT]``: a hub dataset's ``prompt`` column (online only), id its ``id`` column when it
  has one, else ``NAME-<row>``.

The benchmark files are read from ``benchmarks_dir`` (laid out as ``shared/benchmarks``) at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.evals.data.converters import read_jsonl
from tokenpo.evals.errors import EvalError

HH_HUMAN = "\n\nHuman:"
HH_ASSISTANT = "\n\nAssistant:"
HH_HELPFUL_TEST = Path("hh_rlhf") / "helpful-base_test.jsonl.gz"
IFEVAL_INPUT = Path("ifeval") / "input_data.jsonl"
BUILTIN_SETS = ("hh-helpful", "ifeval")


@dataclass(frozen=True)
class Prompt:
    """One prompt: ``text`` is what the user says (one user turn; the model's chat template wraps it)."""

    prompt_id: str
    text: str


def hh_first_turn(dialogue: str) -> str | None:
    """The first human turn of an HH dialogue, stripped; None when the dialogue does not start with
    ``"\\n\\nHuman:"`` followed, later, by ``"\\n\\nAssistant:"``."""
    if not dialogue.startswith(HH_HUMAN):
        return None
    end = dialogue.find(HH_ASSISTANT, len(HH_HUMAN))
    if end < 0:
        return None
    return dialogue[len(HH_HUMAN) : end].strip()


def _limited(prompts: list[Prompt], limit: int | None) -> list[Prompt]:
    if limit is not None and limit < 0:
        raise EvalError("--limit", "", f"expected a count of 0 or more, got {limit}")
    return prompts if limit is None else prompts[:limit]


def hh_helpful_prompts(benchmarks_dir: Path, limit: int | None = None) -> list[Prompt]:
    """HH helpful-base test prompts: first human turns, deduplicated in file order (see the module's doc)."""
    path = Path(benchmarks_dir) / HH_HELPFUL_TEST
    seen: set[str] = set()
    prompts: list[Prompt] = []
    for number, record in read_jsonl(path):
        chosen = record.get("chosen")
        if not isinstance(chosen, str):
            raise EvalError(f"{path}:{number}", "chosen", "missing or not a string")
        text = hh_first_turn(chosen)
        if text is None:
            raise EvalError(f"{path}:{number}", "chosen", 'not a "\\n\\nHuman: … \\n\\nAssistant: …" dialogue')
        if not text:
            raise EvalError(f"{path}:{number}", "chosen", "the first human turn is empty")
        if text in seen:
            continue
        seen.add(text)
        prompts.append(Prompt(f"hh-helpful-{number - 1}", text))
    return _limited(prompts, limit)


def ifeval_prompts(benchmarks_dir: Path, limit: int | None = None) -> list[Prompt]:
    """IFEval's prompts in file order, id ``ifeval-<key>``."""
    path = Path(benchmarks_dir) / IFEVAL_INPUT
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        key = record.get("key")
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise EvalError(where, "key", "missing, or not an integer or string")
        prompt_id = f"ifeval-{key}"
        if prompt_id in seen:
            raise EvalError(where, "key", f"{key} already on line {seen[prompt_id]}")
        seen[prompt_id] = number
        prompts.append(Prompt(prompt_id, _prompt_text(where, record)))
    return _limited(prompts, limit)


def _prompt_text(where: str, record: dict[str, Any]) -> str:
    text = record.get("prompt")
    if not isinstance(text, str):
        raise EvalError(where, "prompt", "missing or not a string")
    if not text.strip():
        raise EvalError(where, "prompt", "empty")
    return text


def jsonl_prompts(path: Path, limit: int | None = None) -> list[Prompt]:
    """Prompts from a JSONL file of ``{"prompt": …, "id": …}`` (``id`` optional: else ``line-<n>``).

    A malformed line (bad JSON, ``prompt`` missing, not a string or blank, ``id`` not a string or
    integer, an id seen before) raises :class:`EvalError` naming ``FILE:LINE`` and the field."""
    path = Path(path)
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        text = _prompt_text(where, record)
        raw_id = record.get("id")
        if raw_id is None:
            prompt_id = f"line-{number}"
        elif isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).strip():
            raise EvalError(where, "id", "expected a non-empty string or an integer")
        else:
            prompt_id = str(raw_id)
        if prompt_id in seen:
            raise EvalError(where, "id", f"{prompt_id!r} already on line {seen[prompt_id]}")
        seen[prompt_id] = number
        prompts.append(Prompt(prompt_id, text))
    return _limited(prompts, limit)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_prompts(spec: str, limit: int | None = None) -> list[Prompt]:
    """``hub:ORG/NAME[:SPLIT]``: the dataset's ``prompt`` column (the only split when SPLIT is omitted).

    Online only: with HF_HUB_OFFLINE set or the hub unreachable, one :class:`EvalError` line says so."""
    name, _, split = spec.removeprefix("hub:").partition(":")
    if name.count("/") != 1 or not all(name.split("/")):
        raise EvalError(spec, "", "expected hub:ORG/NAME or hub:ORG/NAME:SPLIT")
    if _hub_offline():
        raise EvalError(spec, "", "HF_HUB_OFFLINE is set: hub datasets cannot be loaded (use a .jsonl file)")
    try:
        from datasets import load_dataset
    except ImportError:
        raise EvalError(spec, "", "the `datasets` package is not installed") from None
    try:
        loaded = load_dataset(name, split=split or None)
    except Exception as error:  # offline, no such dataset, no permission: all end the run with one line
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise EvalError(spec, "", f"cannot load from the hub ({type(error).__name__}: {first_line})") from None
    if not split:
        splits = list(loaded)
        if len(splits) != 1:
            raise EvalError(spec, "", f"the dataset has splits {', '.join(splits)}: name one (hub:{name}:SPLIT)")
        loaded = loaded[splits[0]]
    if "prompt" not in loaded.column_names:
        raise EvalError(spec, "prompt", f"no such column (columns: {', '.join(loaded.column_names)})")
    has_ids = "id" in loaded.column_names
    short = name.split("/")[1]
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for index, row in enumerate(loaded):
        where = f"{spec}: row {index}"
        prompt_id = str(row["id"]) if has_ids else f"{short}-{index}"
        if prompt_id in seen:
            raise EvalError(where, "id", f"{prompt_id!r} seen before")
        seen.add(prompt_id)
        prompts.append(Prompt(prompt_id, _prompt_text(where, row)))
        if limit is not None and len(prompts) >= limit:
            break
    return _limited(prompts, limit)


def load_prompt_set(spec: str, benchmarks_dir: Path | None, limit: int | None = None) -> list[Prompt]:
    """The prompt set ``spec`` names: ``hh-helpful``, ``ifeval``, a ``.jsonl`` path or ``hub:ORG/NAME[:SPLIT]``."""
    if spec in BUILTIN_SETS:
        if benchmarks_dir is None:
            raise EvalError(spec, "", "needs the benchmark data folder (laid out as shared/benchmarks)")
        reader = hh_helpful_prompts if spec == "hh-helpful" else ifeval_prompts
        return reader(Path(benchmarks_dir), limit)
    if spec.startswith("hub:"):
        return hub_prompts(spec, limit)
    if spec.endswith((".jsonl", ".jsonl.gz")):
        return jsonl_prompts(Path(spec), limit)
    raise EvalError(spec, "", f"unknown prompt set; expected {', '.join(BUILTIN_SETS)}, a .jsonl path or hub:ORG/NAME")
