"""Convert the benchmark files laid out as in ``shared/benchmarks`` into the hub datasets' schemas.

Each converter reads its source files and returns ``{(config, split): [record, …]}`` with exactly
the fields (names, types, order) the hub dataset has, so lm-eval's official task definitions read
them unchanged. A malformed record raises :class:`EvalError` naming the file, line and field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tokenpo.evals.errors import EvalError
from tokenpo.evals.io import read_text

Records = dict[tuple[str, str], list[dict[str, Any]]]
Converter = Callable[[Path], Records]


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every non-blank line of a JSONL file (optionally gzipped)."""
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalError(f"{path}:{number}", "json", error.msg) from error
        if not isinstance(record, dict):
            raise EvalError(f"{path}:{number}", "record", f"expected an object, got {type(record).__name__}")
        yield number, record


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for every row of a CSV file with a header (quoted newlines allowed)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for row in reader:
        if None in row:
            raise EvalError(f"{path}:{reader.line_num}", "row", "more cells than the header has columns")
        yield reader.line_num, row


def _field(where: str, record: dict[str, Any], name: str, kind: type = str) -> Any:
    if name not in record:
        raise EvalError(where, name, "missing")
    value = record[name]
    if not isinstance(value, kind):
        raise EvalError(where, name, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _require(path: Path, rows: Iterator[tuple[int, dict[str, Any]]], fields: dict[str, type]) -> list[dict]:
    """The rows unchanged, after checking each has ``fields`` with the right types."""
    records = []
    for number, record in rows:
        for name, kind in fields.items():
            _field(f"{path}:{number}", record, name, kind)
        records.append(record)
    return records


def gsm8k(source: Path) -> Records:
    """openai/gsm8k ``main``: ``question``, ``answer`` — the same schema as the source files."""
    fields = {"question": str, "answer": str}
    return {
        ("main", split): [
            {"question": r["question"], "answer": r["answer"]}
            for r in _require(source / f"{split}.jsonl", read_jsonl(source / f"{split}.jsonl"), fields)
        ]
        for split in ("train", "test")
    }


MMLU_LETTERS = "ABCD"


def mmlu(source: Path) -> Records:
    """cais/mmlu, one config per subject: ``question``, ``subject`` (snake_case), ``choices``, ``answer`` (0–3).

    The source has ``answer_a``..``answer_d``, ``correct_answer`` (a letter) and ``topic`` (the subject
    with spaces). Only the test split exists there: no ``dev`` (few-shot) or ``validation`` split.
    """
    path = source / "mmlu_test.jsonl"
    out: Records = {}
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        subject = _field(where, record, "topic").strip().replace(" ", "_")
        letter = _field(where, record, "correct_answer").strip()
        if letter not in MMLU_LETTERS:
            raise EvalError(where, "correct_answer", f"expected one of A, B, C, D, got {letter!r}")
        out.setdefault((subject, "test"), []).append(
            {
                "question": _field(where, record, "question"),
                "subject": subject,
                "choices": [_field(where, record, f"answer_{c}") for c in "abcd"],
                "answer": MMLU_LETTERS.index(letter),
            }
        )
    return out


GPQA_REQUIRED = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def gpqa(source: Path) -> Records:
    """Idavidrein/gpqa ``gpqa_diamond`` (train split, as on the hub): every CSV column, empty cells as null.

    Only the diamond subset is available offline (no ``gpqa_main`` / ``gpqa_extended``). Errors name
    the row and column, never the text.
    """
    path = source / "gpqa_diamond.csv"
    records = []
    for number, row in read_csv(path):
        for name in GPQA_REQUIRED:
            if not (row.get(name) or "").strip():
                raise EvalError(f"{path}:{number}", name, "missing or empty")
        records.append({name: (value if value != "" else None) for name, value in row.items()})
    return {("gpqa_diamond", "train"): records}


def _split_hub(csv_list: str) -> list[str]:
    """The hub's ``truthful_qa`` script: split on ';' and strip each item."""
    return [item.strip() for item in csv_list.strip().split(";")]


def _close(answer: str) -> str:
    """The TruthfulQA authors' ``format_best``: strip and end with a period."""
    answer = answer.strip()
    return answer if answer.endswith(".") else answer + "."


def _split_authors(csv_list: str) -> list[str]:
    """The TruthfulQA authors' ``split_multi_answer``: split on ';', drop empties, end each with a period."""
    return [_close(item) for item in csv_list.split(";") if item.strip()]


def truthfulqa(source: Path) -> Records:
    """truthfulqa/truthful_qa: ``generation`` as on the hub, and ``multiple_choice`` derived from the CSV.

    ``generation`` follows the hub's loading script exactly (rows without correct or incorrect
    answers skipped, lists split on ';'). The hub's ``multiple_choice`` config is the authors'
    separate ``mc_task.json``, which is not available offline; it is derived here the way the
    TruthfulQA authors' own CSV evaluation builds its MC questions (``format_best`` and
    ``split_multi_answer``: items split on ';', each ending with a period):
    ``mc1_targets`` = [Best Answer] + Incorrect Answers, labels [1, 0, …];
    ``mc2_targets`` = Correct Answers + Incorrect Answers, labels 1 for each correct, 0 for each
    incorrect. ``mc_task.json`` agrees with these lists on all but a few questions (an audit
    against the hub found 5 of 817 mc2 lists differ), but orders its questions differently, so a
    ``--limit`` picks other items than it would on the hub.
    """
    path = source / "TruthfulQA.csv"
    generation, multiple_choice = [], []
    for number, row in read_csv(path):
        where = f"{path}:{number}"
        for name in ("Type", "Category", "Question", "Best Answer", "Correct Answers", "Incorrect Answers", "Source"):
            if name not in row or row[name] is None:
                raise EvalError(where, name, "missing")
        if not row["Question"].strip() or not row["Best Answer"].strip():
            raise EvalError(where, "Question" if not row["Question"].strip() else "Best Answer", "empty")
        if not row["Correct Answers"] or not row["Incorrect Answers"]:
            continue  # the hub's script drops these rows too
        generation.append(
            {
                "type": row["Type"],
                "category": row["Category"],
                "question": row["Question"],
                "best_answer": row["Best Answer"],
                "correct_answers": _split_hub(row["Correct Answers"]),
                "incorrect_answers": _split_hub(row["Incorrect Answers"]),
                "source": row["Source"],
            }
        )
        best, correct, incorrect = (
            _close(row["Best Answer"]),
            _split_authors(row["Correct Answers"]),
            _split_authors(row["Incorrect Answers"]),
        )
        multiple_choice.append(
            {
                "question": row["Question"],
                "mc1_targets": {"choices": [best, *incorrect], "labels": [1] + [0] * len(incorrect)},
                "mc2_targets": {"choices": [*correct, *incorrect], "labels": [1] * len(correct) + [0] * len(incorrect)},
            }
        )
    return {("generation", "validation"): generation, ("multiple_choice", "validation"): multiple_choice}


def ifeval(source: Path) -> Records:
    """google/IFEval (train split): ``key``, ``prompt``, ``instruction_id_list``, ``kwargs`` — same schema."""
    path = source / "input_data.jsonl"
    fields = {"key": int, "prompt": str, "instruction_id_list": list, "kwargs": list}
    records = _require(path, read_jsonl(path), fields)
    return {("default", "train"): [{name: r[name] for name in fields} for r in records]}


def humaneval(source: Path) -> Records:
    """openai/openai_humaneval (test split): ``task_id``, ``prompt``, ``canonical_solution``, ``test``,
    ``entry_point`` — same schema."""
    path = source / "HumanEval.jsonl.gz"
    fields = {"task_id": str, "prompt": str, "canonical_solution": str, "test": str, "entry_point": str}
    records = _require(path, read_jsonl(path), fields)
    return {("default", "test"): [{name: r[name] for name in fields} for r in records]}


MBPP_TEST_IDS = range(11, 511)


def mbpp(source: Path) -> Records:
    """google-research-datasets/mbpp ``sanitized`` (test split: task ids 11–510), as on the hub.

    Fields: ``source_file``, ``task_id``, ``prompt``, ``code``, ``test_imports``, ``test_list``.
    Only the sanitized subset is available offline (257 test problems, not the ``full`` config's 500).
    """
    path = source / "sanitized-mbpp.json"
    try:
        rows = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise EvalError(f"{path}:{error.lineno}", "json", error.msg) from error
    if not isinstance(rows, list):
        raise EvalError(str(path), "file", "expected a JSON array of problems")
    fields = {"source_file": str, "task_id": int, "prompt": str, "code": str, "test_imports": list, "test_list": list}
    test = []
    for index, row in enumerate(rows, start=1):
        for name, kind in fields.items():
            _field(f"{path}: problem {index}", row, name, kind)
        if row["task_id"] in MBPP_TEST_IDS:
            test.append({name: row[name] for name in fields})
    return {("sanitized", "test"): test}


# The converter of each benchmark of the catalog that has offline data (tokenpo/core/catalog.yaml).
CONVERTERS: dict[str, Converter] = {
    "gsm8k": gsm8k,
    "mmlu": mmlu,
    "gpqa": gpqa,
    "truthfulqa": truthfulqa,
    "ifeval": ifeval,
    "humaneval": humaneval,
    "mbpp": mbpp,
}
