"""What one evaluation is asked to do, checked once: :class:`Evaluation`, and the folders it works in.

:func:`tokenpo.evals.evaluate` turns its arguments into an :class:`Evaluation` and passes it to each of
its jobs (task files, shards, server, claim, journal, results); none of them reads anything else, so
two evaluations in one process are independent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core.hardware import default_device
from tokenpo.evals.backends import batch_sizes
from tokenpo.evals.errors import EvalError
from tokenpo.evals.generation import GenerationPlan, gen_kwargs_problem
from tokenpo.evals.suites import Suite, load_suite, parse_tasks
from tokenpo.evals.vllm_server import ServerBackend
from tokenpo.sandbox import SandboxLimits

CACHE = ".cache"
LM_EVAL_DEFAULT_SEEDS = {
    "random_seed": 0,
    "numpy_random_seed": 1234,
    "torch_random_seed": 1234,
    "fewshot_random_seed": 1234,
}
SEED_ARGUMENTS = tuple(LM_EVAL_DEFAULT_SEEDS)
LM_EVAL_FEWSHOT_AS_MULTITURN = True  # simple_evaluate's default (its command line's too, with a chat template)


@dataclass(frozen=True)
class Evaluation:
    """The arguments of :func:`tokenpo.evals.evaluate` (but ``shards`` and ``shard``), resolved: the suite
    chosen, folders absolute, the sandbox limits given. A spawned shard receives it as it is."""

    model: Any
    tokenizer: Any
    suite: Suite
    output_dir: Path
    data_dir: Path | None
    limit: int | None
    backend: str
    batch_size: int | str | None  # an integer, lm-eval's "auto", or None: per request type (backends)
    device: str | None
    num_fewshot: int | None
    apply_chat_template: bool | None
    seed: int | None
    sandbox: SandboxLimits
    metadata: dict[str, Any] | None
    server: ServerBackend | None
    gen_kwargs: dict[str, Any] | None = None
    system_instruction: str | None = None
    fewshot_as_multiturn: bool | None = None
    predict_only: bool = False

    def __post_init__(self) -> None:
        """Refuse what lm-eval's command line refuses, naming the flag, before anything is loaded."""
        if self.gen_kwargs is not None and (problem := gen_kwargs_problem(self.gen_kwargs)):
            raise EvalError("--gen-kwargs", "", problem)
        if self.instruction is not None and not self.instruction.strip():
            raise EvalError("--system-instruction", "", "expected text")
        if self._multiturn_choice is True and not self.chat_template:
            where = "--fewshot-as-multiturn" if self.fewshot_as_multiturn else f"suite {self.suite.name}"
            problem = "true needs the chat template (--apply-chat-template; turns exist only in a chat), as in lm-eval"
            raise EvalError(where, "fewshot_as_multiturn" if self.fewshot_as_multiturn is None else "", problem)

    @property
    def batches(self) -> int | str | dict[str, int | str]:
        """The batch size each request type answers with, as results and the journal's key record it: one
        value when all share it (as for an explicit ``batch_size``), else ``{request type: size}``."""
        if self.backend != "hf":
            return "auto" if self.batch_size is None else self.batch_size
        sizes = batch_sizes(self.batch_size, self.device or default_device())
        return next(iter(sizes.values())) if len(set(sizes.values())) == 1 else sizes

    @property
    def model_is_named(self) -> bool:
        """The model is a folder or hub id (not an in-memory object)."""
        return isinstance(self.model, str | os.PathLike)

    @property
    def seeds(self) -> dict[str, int]:
        """lm-eval's four seeds: all ``seed``, or lm-eval's defaults when it is None."""
        return {**LM_EVAL_DEFAULT_SEEDS, **({} if self.seed is None else dict.fromkeys(SEED_ARGUMENTS, self.seed))}

    @property
    def fewshot(self) -> int | None:
        """Few-shot examples per task: the argument's, else the suite's (None: each task's own)."""
        return self.num_fewshot if self.num_fewshot is not None else self.suite.num_fewshot

    @property
    def chat_template(self) -> bool:
        """Whether prompts go through the model's chat template: the argument's choice, else the suite's."""
        return self.suite.apply_chat_template if self.apply_chat_template is None else self.apply_chat_template

    @property
    def instruction(self) -> str | None:
        """The system instruction before every prompt: the argument's, else the suite's (None: none)."""
        return self.system_instruction if self.system_instruction is not None else self.suite.system_instruction

    @property
    def multiturn(self) -> bool:
        """With a chat template, few-shot examples as turns of the chat: the argument's choice, else the
        suite's, else lm-eval's default."""
        choice = self._multiturn_choice
        return LM_EVAL_FEWSHOT_AS_MULTITURN if choice is None else choice

    @property
    def _multiturn_choice(self) -> bool | None:
        """The few-shot turns asked for: the argument's, else the suite's (None: neither says)."""
        return self.fewshot_as_multiturn if self.fewshot_as_multiturn is not None else self.suite.fewshot_as_multiturn

    @property
    def generation(self) -> GenerationPlan:
        """The generation arguments each generative task gets (:mod:`tokenpo.evals.generation`)."""
        return GenerationPlan(self.gen_kwargs or {}, self.suite.gen_kwargs or {}, self.suite.task_generation_kwargs())

    @property
    def prompting(self) -> dict[str, Any]:
        """How prompts are made and answers generated beyond the tasks' files, where it differs from a plain
        lm-eval run: generation arguments, system instruction, few-shot turns. Only what differs, so the
        journals and claims of runs that set none of these keep their names."""
        chosen = {
            "gen_kwargs": self.generation.general,
            "system_instruction": self.instruction,
            "fewshot_as_multiturn": self.multiturn,
        }
        plain = {"gen_kwargs": {}, "system_instruction": None, "fewshot_as_multiturn": LM_EVAL_FEWSHOT_AS_MULTITURN}
        return {key: value for key, value in chosen.items() if value != plain[key]}

    @property
    def documents(self) -> int | None:
        """At most this many documents per task: the argument's limit, else the suite's (None: all)."""
        return self.limit if self.limit is not None else self.suite.limit


def select_suite(tasks: list[str | dict[str, Any]] | None, suite: str | Suite | None) -> Suite:
    """The suite to run: ``suite`` (a name, a file or a :class:`Suite`), or ``tasks`` as a custom one."""
    if (tasks is None) == (suite is None):
        raise EvalError("evaluate", "tasks/suite", "give exactly one of tasks and suite")
    if suite is not None:
        return suite if isinstance(suite, Suite) else load_suite(suite)
    return Suite(name="custom", tasks=parse_tasks("--tasks", list(tasks)))


@dataclass(frozen=True)
class RunFolders:
    """Where one pass of an evaluation works: the result folder, its cache (journals, claim) and the folder
    of this pass's own task files and server log (a shard's apart from the others')."""

    output_dir: Path
    cache: Path
    pass_dir: Path

    @classmethod
    def of(cls, output_dir: Path, shard: tuple[int, int] | None) -> RunFolders:
        cache = output_dir / CACHE
        return cls(output_dir, cache, cache if shard is None else cache / f"shard-{shard[0]}")

    @property
    def server_log(self) -> Path:
        return self.pass_dir / "vllm-server.log"
