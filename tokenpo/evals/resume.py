"""Resumable requests: every model answer is appended to a journal as soon as it exists.

:class:`ResumableLM` wraps any lm-eval ``LM``. Requests are keyed by the method, the request's
arguments and their occurrence number (so the n identical requests of a sampled pass@n task stay
n distinct answers) and answered in chunks; after each chunk the answers are appended to
``journal`` and fsynced. Re-running into the same journal answers finished requests from it, so a
killed evaluation resumes where it stopped. (lm-eval's own ``use_cache`` skips sampled generation
and writes a chunk only after a whole method call, hence this wrapper.)

Journal lines: ``{"key": sha256, "response": …}``; a torn last line (a kill mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from tokenpo.core import progress
from tokenpo.core.fingerprint import fingerprint

METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
# What a shard answers for the requests of other shards: its own results are never written.
PLACEHOLDER: dict[str, Any] = {"loglikelihood": (0.0, False), "loglikelihood_rolling": 0.0, "generate_until": ""}


def request_key(method: str, args: Any, occurrence: int) -> str:
    return fingerprint([method, args, occurrence])


def read_journal(path: Path) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if not path.is_file():
        return answers
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # blank, or the torn tail of a killed write
        answers[entry["key"]] = entry["response"]
    return answers


class ResumableLM(LM):
    """An ``LM`` that answers from ``journal`` when it can and records every new answer there."""

    def __init__(self, inner: LM, journal: Path, chunk_size: int = 32, shard: tuple[int, int] | None = None):
        """``shard=(i, n)``: answer only the i-th of n disjoint parts of the requests (by key) into a journal
        of its own beside ``journal``, the others with placeholders; a run without a shard reads every
        shard's journal, so n shards and one final pass give the answers of one unsharded run."""
        super().__init__()
        self.inner, self.chunk_size, self.shard = inner, chunk_size, shard
        journal = Path(journal)
        journal.parent.mkdir(parents=True, exist_ok=True)
        self.answers = read_journal(journal)
        for part in sorted(journal.parent.glob(f"{journal.stem}.shard-*.jsonl")):
            self.answers.update(read_journal(part))
        own = journal if shard is None else journal.with_name(f"{journal.stem}.shard-{shard[0]}-of-{shard[1]}.jsonl")
        self.journal = own
        self.reused = 0
        self.computed = 0

    # lm-eval asks the model for these; they are the wrapped model's.
    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def world_size(self) -> int:
        return self.inner.world_size

    @property
    def tokenizer_name(self) -> str:
        return self.inner.tokenizer_name

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.inner.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.inner.chat_template(chat_template)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._answer("loglikelihood", requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._answer("loglikelihood_rolling", requests)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._answer("generate_until", requests)

    def _answer(self, method: str, requests: list) -> list:
        seen: Counter[str] = Counter()
        keys = []
        for request in requests:
            base = request_key(method, request.args, 0)
            keys.append(request_key(method, request.args, seen[base]))
            seen[base] += 1
        todo = [i for i, key in enumerate(keys) if key not in self.answers]
        if self.shard is not None:
            index, count = self.shard
            todo = [i for i in todo if int(keys[i][:8], 16) % count == index]
        self.reused += sum(key in self.answers for key in keys)
        with progress.task(method, total=len(requests), unit="req", done=len(requests) - len(todo)) as bar:
            for start in range(0, len(todo), self.chunk_size):
                chunk = todo[start : start + self.chunk_size]
                responses = getattr(self.inner, method)([requests[i] for i in chunk], disable_tqdm=True)
                lines = []
                for index, response in zip(chunk, responses, strict=True):
                    self.answers[keys[index]] = response
                    lines.append(json.dumps({"key": keys[index], "response": response}, ensure_ascii=False))
                with open(self.journal, "a", encoding="utf-8") as handle:
                    handle.write("\n".join(lines) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                self.computed += len(chunk)
                bar.advance(len(chunk))
        return [self._restore(method, self.answers.get(key, PLACEHOLDER[method])) for key in keys]

    @staticmethod
    def _restore(method: str, response: Any) -> Any:
        # JSON turns loglikelihood's (logprob, is_greedy) tuples into lists; lm-eval unpacks either.
        return tuple(response) if method == "loglikelihood" and isinstance(response, list) else response
