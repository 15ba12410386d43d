"""Resumable requests: every model answer is appended to a journal as soon as it exists.

:class:`ResumableLM` wraps any lm-eval ``LM``. Requests are keyed by the method, the request's
arguments and their occurrence number (so the n identical requests of a sampled pass@n task stay
n distinct answers). The unanswered requests go to the wrapped model in one call, as plain lm-eval
sends them (so its batches, and a server's queue, are the ones it would form), and each answer is
appended to ``journal`` as it arrives: lm-eval's models report every answer to their cache hook the
moment they have it, and the journal is that hook (fsynced every :data:`SYNC_EVERY` answers or
:data:`SYNC_SECONDS`). Re-running into the same journal answers finished requests from it, so a
killed evaluation resumes where it stopped. (lm-eval's own ``use_cache`` skips sampled generation,
hence this wrapper.)

Journal lines: ``{"key": sha256, "response": …}``; a torn last line (a kill mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from tokenpo.core import progress
from tokenpo.core.fingerprint import fingerprint
from tokenpo.evals.errors import EvalError

METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
# What a shard answers for the requests of other shards: its own results are never written.
PLACEHOLDER: dict[str, Any] = {"loglikelihood": (0.0, False), "loglikelihood_rolling": 0.0, "generate_until": ""}
SYNC_EVERY, SYNC_SECONDS = 32, 5.0  # a kill loses at most this many answers, or this many seconds' worth


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

    def __init__(self, inner: LM, journal: Path, shard: tuple[int, int] | None = None, answered: bool = False):
        """``shard=(i, n)``: answer only the i-th of n disjoint parts of the requests (by key) into a journal
        of its own beside ``journal``, the others with placeholders; a run without a shard reads every
        shard's journal, so n shards and one final pass give the answers of one unsharded run.
        ``answered``: every answer must be journaled already (the pass after shards); a missing one raises
        EvalError instead of asking ``inner``."""
        super().__init__()
        self.inner, self.shard, self.answered = inner, shard, answered
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
        if todo and self.answered:
            missing = f"{len(todo)} of {len(keys)} requests have no journaled answer after the shards"
            raise EvalError(str(self.journal), method, missing)
        waiting: defaultdict[str, deque[str]] = defaultdict(deque)  # request (occurrence 0) → its keys
        for i in todo:
            waiting[request_key(method, requests[i].args, 0)].append(keys[i])
        done = len(requests) - len(todo)
        with progress.task(method, total=len(requests), unit="req", done=done) as bar, _Appender(self.journal) as out:

            def arrived(args: Any, response: Any) -> None:
                pending = waiting.get(request_key(method, args, 0))
                if pending:  # else not one of ours (or told twice): the returned answers below cover it
                    key = pending.popleft()
                    self.answers[key] = response
                    out.add(key, response)
                    bar.advance()

            if todo:
                previous = self.inner.cache_hook
                self.inner.set_cache_hook(_Hook(method, arrived, previous))
                try:
                    responses = getattr(self.inner, method)([requests[i] for i in todo], disable_tqdm=True)
                finally:
                    self.inner.set_cache_hook(previous)
                # What the call returned is the answer; one the hook did not see (or saw otherwise) is written now.
                for i, response in zip(todo, responses, strict=True):
                    if self.answers.get(keys[i], _MISSING) != response:
                        if keys[i] not in self.answers:
                            bar.advance()
                        self.answers[keys[i]] = response
                        out.add(keys[i], response)
            self.computed += len(todo)
        return [self._restore(method, self.answers.get(key, PLACEHOLDER[method])) for key in keys]

    @staticmethod
    def _restore(method: str, response: Any) -> Any:
        # JSON turns loglikelihood's (logprob, is_greedy) tuples into lists; lm-eval unpacks either.
        return tuple(response) if method == "loglikelihood" and isinstance(response, list) else response


_MISSING = object()


class _Hook:
    """lm-eval's cache hook: its models call ``add_partial(method, request args, answer)`` per answer
    (passed on to the hook it replaces, lm-eval's own cache when one is set)."""

    def __init__(self, method: str, arrived: Any, previous: Any):
        self.method, self.arrived, self.previous = method, arrived, previous

    def add_partial(self, method: str, args: Any, response: Any) -> None:
        if method == self.method:
            self.arrived(args, response)
        self.previous.add_partial(method, args, response)


class _Appender:
    """Journal lines appended as answers come, fsynced every SYNC_EVERY lines or SYNC_SECONDS, and at the end."""

    def __init__(self, path: Path):
        self.path, self.lines, self.synced = path, [], time.monotonic()

    def __enter__(self) -> _Appender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sync()  # also on errors and Ctrl-C: what was answered stays answered

    def add(self, key: str, response: Any) -> None:
        self.lines.append(json.dumps({"key": key, "response": response}, ensure_ascii=False))
        if len(self.lines) >= SYNC_EVERY or time.monotonic() - self.synced >= SYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        if self.lines:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("\n".join(self.lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.lines = []
        self.synced = time.monotonic()
