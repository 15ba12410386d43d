"""The ``harness run`` configuration: model, data, methods, evaluation, report — validated at the edge.

Every key is checked when the file is read (unknown key, wrong type, bad value: one line naming
the key, exit 2), then the typed objects are passed down; nothing re-reads the YAML later.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenpo.core.config import field_error, from_mapping, to_mapping
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import DEFAULT_MODEL
from tokenpo.trainers.config import MethodConfig, TrainingConfig
from tokenpo.trainers.data.records import FORMATS

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass
class SentimentPairs:
    """SparsePO's sentiment-control setting, built offline: openings of film reviews are continued
    ``completions_per_prompt`` times by the base model, the sentiment judge scores every
    continuation, and the most and least positive continuation of a prompt make a pair."""

    # "builtin" (80 openings written for this project), a text file (one prompt per line), or a review
    # CSV (IMDB-style: `text`, `is_valid`): the first `prompt_words` words of each review, held out if valid
    prompts: str = "builtin"
    prompt_words: int = 8
    train_prompts: int = 56
    eval_prompts: int = 24  # held out: the positive rate and KL of every model are measured on these
    completions_per_prompt: int = 4
    max_new_tokens: int = 24
    temperature: float = 1.0
    top_k: int = 0
    min_margin: float = 0.05  # pairs whose P(positive) differ by less are not preference signal
    classifier: str | None = None  # a text-classification model (hub id/folder); None: VADER, offline
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("train_prompts", "eval_prompts", "max_new_tokens", "batch_size", "prompt_words"):
            if getattr(self, name) < 1:
                raise field_error(name, f"must be at least 1, got {getattr(self, name)}")
        if self.completions_per_prompt < 2:
            count = self.completions_per_prompt
            raise field_error("completions_per_prompt", f"must be at least 2 to make a pair, got {count}")
        if not self.temperature > 0:
            raise field_error("temperature", f"must be positive, got {self.temperature}")
        if self.top_k < 0:
            raise field_error("top_k", f"must be 0 (off) or positive, got {self.top_k}")
        if not 0 <= self.min_margin < 1:
            raise field_error("min_margin", f"must be in [0, 1), got {self.min_margin}")


@dataclass
class DataConfig:
    """Exactly one source: a preference ``path`` (file or hub dataset) or ``sentiment`` pairs."""

    path: str | None = None
    format: Literal[FORMATS] = "auto"  # type: ignore[valid-type]
    split: str = "train"
    skip_invalid: bool = False
    limit: int | None = None
    sentiment: SentimentPairs | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.sentiment is None):
            raise field_error(
                "path", "give exactly one of data.path (a preference file or hub dataset) and data.sentiment"
            )
        if self.limit is not None and self.limit < 1:
            raise field_error("limit", f"must be positive, got {self.limit}")


@dataclass
class MethodRun:
    """One method to train: its hyper-parameters, its own training overrides, and its seeds."""

    name: str
    method: MethodConfig
    training: dict[str, Any] = field(default_factory=dict)  # overrides of the run's `training`
    seeds: list[int] = field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise field_error("name", f"must be lower-case letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise field_error("seeds", f"must be a non-empty list of distinct integers, got {self.seeds}")


@dataclass
class SentimentEval:
    samples_per_prompt: int = 2
    max_new_tokens: int = 24
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 1 or self.max_new_tokens < 1 or not self.temperature > 0:
            problem = "samples_per_prompt and max_new_tokens must be ≥ 1, temperature > 0"
            raise field_error("samples_per_prompt", problem)


@dataclass
class EvalConfig:
    """What every model (the base and each trained one) is evaluated on."""

    sentiment: SentimentEval | None = field(default_factory=SentimentEval)
    suite: str | None = None  # e.g. "smoke" or "paper"; None: no benchmarks
    limit: int | None = None
    data_dir: str | None = None  # benchmark files as in ../shared/benchmarks; None: the hub
    when_unavailable: Literal["skip", "error"] = "skip"  # no data_dir and no hub: skip benchmarks, say so
    batch_size: int = 8
    apply_chat_template: bool | None = None
    # lm-eval's four seeds for the benchmarks; None keeps lm-eval's defaults, so few-shot examples are
    # those of a plain `lm_eval` run (the training seed never reaches the evaluation)
    seed: int | None = None


@dataclass
class ReportConfig:
    baseline: str = "dpo"
    html: bool = True


@dataclass
class RunConfig:
    """The whole of ``harness run``'s YAML."""

    name: str
    data: DataConfig
    methods: list[MethodRun]
    output_dir: str = "runs/{name}"
    model: str = DEFAULT_MODEL
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise field_error("name", f"must be lower-case letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.methods:
            raise field_error("methods", "list at least one method to train")
        names = [run.name for run in self.methods]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise field_error("methods", f"two methods are named {duplicate!r}; names must be unique")
        if self.report.baseline not in names:
            baseline = self.report.baseline
            raise field_error("report", f"baseline {baseline!r} is not one of the methods: {', '.join(names)}")

    @property
    def output(self) -> str:
        return self.output_dir.format(name=self.name)


def method_training(config: RunConfig, index: int, source: str) -> TrainingConfig:
    """The run's ``training`` with method ``index``'s overrides and seed applied, validated."""
    run = config.methods[index]
    merged = {**to_mapping(config.training), **run.training}
    return from_mapping(TrainingConfig, merged, source, f"methods[{index}].training")


def seeded(training: TrainingConfig, seed: int) -> TrainingConfig:
    return dataclasses.replace(training, seed=seed)


__all__ = ["DataConfig", "EvalConfig", "HarnessError", "MethodRun", "RunConfig", "SentimentPairs", "method_training"]
