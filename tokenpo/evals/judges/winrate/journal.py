"""Every judgment recorded the moment it exists, so a killed judging run resumes where it stopped.

The journal is append-only JSONL, one line per judgment::

    {"prompt_id": …, "order": "candidate_first" | "baseline_first",
     "judge": {"model": …, "template": TEMPLATE_VERSION, "decoding": {…}},
     "messages_sha256": …, "reply": … | null, "verdict": "A" | "B" | "tie" | null,
     "error": … | null, "time": "2025-01-01T00:00:00+00:00"}

Each line is written in one ``write``, flushed and fsynced before ``record`` returns: a judge call costs
seconds, a sync milliseconds, so a kill loses at most the judgment being written. Such a kill leaves a
torn last line (no newline at its end); opening the journal drops it, so that judgment is asked again
and its line rewritten whole. Any other unreadable line is damage, not a kill, and an error.

A journal belongs to one judge key (the judge model, the prompt template's version and the decoding
settings: whatever changes a judgment). Opening it with another key is refused, naming the file, since
mixing two judges' verdicts in one win rate would be silently wrong. The hash of the messages the judge
saw (question and both answers, in order) is recorded too: when an answer was regenerated since, the
old judgment is not of these answers, and :meth:`JudgmentJournal.done` does not return it.

A failed call (``error``, no reply) is recorded for the report but not done: the next run asks again. A
reply without a parseable verdict is done: asking again until a verdict parses would pick the judge's
answers. The last line of a (prompt, order) wins. One process writes a journal at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tokenpo.core.fingerprint import canonical_json, fingerprint
from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.protocol import ORDERS, TEMPLATE_VERSION, VERDICTS, Judgment, Order

_FIELDS = ("prompt_id", "order", "judge", "messages_sha256", "reply", "verdict", "error", "time")


def judge_key(model: str, decoding: Mapping[str, Any], template: str = TEMPLATE_VERSION) -> dict[str, Any]:
    """The judge key of a journal: the judge model, the template version and the decoding settings
    (temperature, max tokens, seed, …)."""
    return {"model": model, "template": template, "decoding": dict(decoding)}


def messages_hash(messages: list[dict[str, str]]) -> str:
    """sha256 of the judge's messages (canonical JSON)."""
    return fingerprint(messages)


class JudgmentJournal:
    """The judgments of one judge key in the JSONL file ``path`` (created on the first ``record``)."""

    def __init__(self, path: str | os.PathLike[str], judge_key: Mapping[str, Any]):
        self.path = Path(path)
        # Compared as canonical JSON: the key's dict order, or tuples read back as lists, never differ.
        self.judge_key = json.loads(canonical_json(dict(judge_key)))
        self._key_json = canonical_json(self.judge_key)
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._read()

    def _read(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # just past the last newline; 0 when there is none
        complete, torn = data[:end], data[end:]
        for number, line in enumerate(complete.decode("utf-8").split("\n"), start=1):
            if line.strip():
                entry = self._parse(line, number)
                self._entries[(entry["prompt_id"], entry["order"])] = entry
        if torn:
            # A kill mid-write: cut the partial line off so the next record starts on a line of its own
            # (only now, once the file is known to be this judge's journal).
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())

    def _parse(self, line: str, number: int) -> dict[str, Any]:
        where = f"{self.path}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalError(where, "", f"not a JSON line ({error.msg})") from None
        if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
            raise EvalError(where, "", f"a judgment line has exactly the fields {', '.join(_FIELDS)}")
        if canonical_json(entry["judge"]) != self._key_json:
            raise EvalError(
                str(self.path),
                "judge",
                f"written by judge {canonical_json(entry['judge'])}, not {self._key_json}: use another journal",
            )
        if entry["order"] not in ORDERS:
            raise EvalError(where, "order", f"{entry['order']!r} is not one of {', '.join(ORDERS)}")
        if entry["verdict"] is not None and entry["verdict"] not in VERDICTS:
            raise EvalError(where, "verdict", f"{entry['verdict']!r} is not one of A, B, tie")
        return entry

    def done(self, prompt_id: str, order: Order, messages: list[dict[str, str]] | None = None) -> Judgment | None:
        """The recorded judgment of ``prompt_id`` in ``order``, or None when there is none to reuse: never
        recorded, recorded as a failed call, or (when ``messages`` is given) recorded for other messages."""
        entry = self._entries.get((prompt_id, order))
        if entry is None or entry["reply"] is None:
            return None
        if messages is not None and entry["messages_sha256"] != messages_hash(messages):
            return None
        return Judgment(entry["prompt_id"], entry["order"], entry["reply"], entry["verdict"], entry["error"])

    def record(self, judgment: Judgment, messages: list[dict[str, str]]) -> None:
        """Append ``judgment`` of the judge's ``messages``, flushed and fsynced before returning."""
        entry = {
            "prompt_id": judgment.prompt_id,
            "order": judgment.order,
            "judge": self.judge_key,
            "messages_sha256": messages_hash(messages),
            "reply": judgment.reply,
            "verdict": judgment.verdict,
            "error": judgment.error,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._entries[(judgment.prompt_id, judgment.order)] = entry

    def judgments(self) -> list[Judgment]:
        """The latest recorded judgment of every (prompt, order), failed calls included, in first-recorded order."""
        return [
            Judgment(e["prompt_id"], e["order"], e["reply"], e["verdict"], e["error"]) for e in self._entries.values()
        ]
