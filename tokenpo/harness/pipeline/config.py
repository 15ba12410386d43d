"""The ``harness run`` configuration: model, data, methods, evaluation, report — validated at the edge.

Every key is checked when the file is read (unknown key, wrong type, bad value: one line naming
the key, exit 2), then the typed objects are passed down; nothing re-reads the YAML later. Each
field's help is in its metadata; ``docs/configuration.md`` is generated from it. The ``data`` block
(:class:`DataConfig`) is ``harness train``'s too.

Why one module: it is declarations only (fields, their help, their checks), the one place a reader
looks up what a run setting means; most of its length is help text.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenpo.core.config import ConfigError, field_error, from_mapping, to_mapping
from tokenpo.evals.judges.winrate.choice import JudgeChoice
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import DEFAULT_MODEL
from tokenpo.harness.pipeline.executor import ExecutorConfig
from tokenpo.harness.pipeline.sweep import SweepConfig, expand_entries
from tokenpo.leaderboards.verdicts import DEFAULT_MARGIN
from tokenpo.trainers.config import MethodConfig, TrainingConfig
from tokenpo.trainers.data.records import FORMATS

BASE = "base"  # the label of the untrained base model among the evaluated ones
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass
class SentimentPairs:
    """SparsePO's sentiment-control setting, built offline: openings of film reviews are continued
    ``completions_per_prompt`` times by the base model, the sentiment judge scores every
    continuation, and the most and least positive continuation of a prompt make a pair."""

    prompts: str = field(
        default="builtin",
        metadata={
            "help": "builtin (80 openings written for this project), a text file (one prompt per line), or "
            "a review CSV (IMDB-style: text, is_valid): the first prompt_words words of each review, "
            "those with is_valid true held out"
        },
    )
    prompt_words: int = field(default=8, metadata={"help": "words of each review that make an opening (CSV only)"})
    train_prompts: int = field(
        default=56, metadata={"help": "openings continued to make pairs (the first ones of a list or CSV)"}
    )
    eval_prompts: int = field(
        default=24,
        metadata={
            "help": "held-out openings (the next ones of a list; a CSV's is_valid reviews): the positive rate "
            "and KL of every model are measured on these"
        },
    )
    completions_per_prompt: int = field(
        default=4, metadata={"help": "continuations the base model samples per opening (at least 2)"}
    )
    max_new_tokens: int = field(default=24, metadata={"help": "a continuation's maximum length in new tokens"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_k: int = field(default=0, metadata={"help": "sampling top-k; 0: off"})
    min_margin: float = field(
        default=0.05,
        metadata={"help": "an opening whose best and worst P(positive) differ by less makes no pair (counted)"},
    )
    classifier: str | None = field(
        default=None,
        metadata={
            "help": "a text-classification model (hub id or folder) that scores sentiment, here and in "
            "eval.sentiment; null: VADER, offline"
        },
    )
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch, here and in eval.sentiment"})

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
class MixtureSource:
    """One source of ``data.mixture``: a preference file or hub dataset, and its weight in the mix."""

    path: str = field(metadata={"help": "JSONL, JSON, CSV (optionally .gz), Parquet, or a hub dataset id"})
    weight: float = field(default=1.0, metadata={"help": "its share of the mixture is weight / the weights' sum"})
    name: str | None = field(default=None, metadata={"help": "the hub dataset's subset (configuration) name"})
    split: str = field(default="train", metadata={"help": "split of a hub dataset"})
    format: Literal[FORMATS] = field(  # type: ignore[valid-type]
        default="auto", metadata={"help": "record format, as data.format"}
    )
    limit: int | None = field(default=None, metadata={"help": "only its first N valid pairs are drawn from"})

    def __post_init__(self) -> None:
        if not (self.weight >= 0 and self.weight < float("inf")):
            raise field_error("weight", f"must be a finite number ≥ 0, got {self.weight}")
        if self.limit is not None and self.limit < 1:
            raise field_error("limit", f"must be positive, got {self.limit}")


@dataclass
class DataConfig:
    """Exactly one source: a preference ``path`` (file or hub dataset), a ``mixture`` of several, or
    ``sentiment`` pairs."""

    path: str | None = field(
        default=None,
        metadata={"help": "preference data: JSONL, JSON, CSV (optionally .gz), Parquet, or a hub dataset id"},
    )
    format: Literal[FORMATS] = field(  # type: ignore[valid-type]
        default="auto",
        metadata={
            "help": "record format; auto decides per record (lists: conversational, an HH dialogue without "
            "prompt: hh-rlhf, else standard)"
        },
    )
    split: str = field(default="train", metadata={"help": "split of a hub dataset"})
    name: str | None = field(default=None, metadata={"help": "the hub dataset's subset (configuration) name"})
    skip_invalid: bool = field(
        default=False,
        metadata={
            "help": "skip malformed records instead of stopping; they are counted and written to a rejects JSONL file"
        },
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "only the first N valid pairs (quick runs; of a mixture: its size); null: all"},
    )
    truncated_completions: bool = field(
        default=False,
        metadata={
            "help": "true: every plain-text completion was cut at a length limit, so no end-of-text is "
            "appended (per record: chosen_truncated / rejected_truncated)"
        },
    )
    sentiment: SentimentPairs | None = field(
        default=None,
        metadata={"help": "instead of path, sentiment-control pairs built from the base model (harness run only)"},
    )
    mixture: list[MixtureSource] | None = field(
        default=None,
        metadata={
            "help": "instead of path, several sources mixed by weight: counts fixed by the weights (largest "
            "remainder), the pairs drawn with data.seed; limit: the mixture's size (default: the largest "
            "no source runs short of); recorded in data/mixture.json and the model card"
        },
    )
    eval_fraction: float | None = field(
        default=None,
        metadata={
            "help": "hold out this share of the pairs (after limit): ⌈fraction × pairs⌉ drawn with data.seed, "
            "evaluated during training (training.eval_steps), never trained on; null: none"
        },
    )
    eval_path: str | None = field(
        default=None,
        metadata={"help": "held-out pairs from their own file or hub dataset (format and skip_invalid as path's)"},
    )
    eval_split: str = field(default="test", metadata={"help": "the split of a hub dataset at eval_path"})
    seed: int = field(
        default=0,
        metadata={"help": "the data's own seed (not a method's training seed): eval_fraction's and mixture's draws"},
    )

    def __post_init__(self) -> None:
        if sum(source is not None for source in (self.path, self.sentiment, self.mixture)) != 1:
            raise field_error(
                "path",
                "give exactly one of data.path (a preference file or hub dataset), data.mixture and data.sentiment",
            )
        if self.mixture is not None:
            if not self.mixture:
                raise field_error("mixture", "list at least one source")
            weights = [source.weight for source in self.mixture]
            if not sum(weights) > 0:
                raise field_error("mixture", f"the weights must sum to a positive number, got {weights}")
            if self.name is not None:
                raise field_error("name", "give each mixture source its own name")
        if self.eval_fraction is not None and not 0 < self.eval_fraction < 1:
            raise field_error("eval_fraction", f"must lie strictly between 0 and 1, got {self.eval_fraction}")
        if self.eval_fraction is not None and self.eval_path is not None:
            raise field_error("eval_path", "give at most one of eval_fraction and eval_path")
        if self.eval_path is not None and self.sentiment is not None:
            raise field_error("eval_path", "applies to data.path; hold sentiment pairs out with eval_fraction")
        if self.name is not None and self.sentiment is not None:
            raise field_error("name", "applies to a hub dataset at data.path")
        if self.limit is not None and self.limit < 1:
            raise field_error("limit", f"must be positive, got {self.limit}")
        if self.truncated_completions and self.sentiment is not None:
            # Sentiment pairs record per continuation whether it was cut; a blanket switch would contradict them.
            raise field_error("truncated_completions", "applies to data.path; sentiment pairs mark their own")


@dataclass
class MethodRun:
    """One method to train: its hyper-parameters, its own training overrides, and its seeds."""

    name: str = field(
        metadata={
            "help": "the method's name in the run: lower-case letters, digits, '.', '_', '-'; its models are NAME-seedS"
        }
    )
    method: MethodConfig = field(
        metadata={"help": "the method (name: dpo, tdpo, sparsepo or tidpo) and its keys, as harness train's method"}
    )
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "keys of the run's training this method sets otherwise"}
    )
    seeds: list[int] = field(
        default_factory=lambda: [0], metadata={"help": "one trained model per seed (training.seed), distinct"}
    )

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise field_error("name", f"must be lower-case letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise field_error("seeds", f"must be a non-empty list of distinct integers, got {self.seeds}")


@dataclass
class SentimentEval:
    """Sampled continuations of the held-out openings, scored for sentiment and KL to the base model."""

    samples_per_prompt: int = field(default=2, metadata={"help": "continuations sampled per held-out opening"})
    max_new_tokens: int = field(default=24, metadata={"help": "a continuation's maximum length in new tokens"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    batch_size: int | None = field(
        default=None, metadata={"help": "prompts per generation batch; null: data.sentiment's batch_size"}
    )
    mixed_precision: Literal["no", "bf16"] = field(
        default="no",
        metadata={
            "help": "no: sampling and the KL in the models' float32; bf16: both under bf16 autocast (float32 "
            "weights, bf16 matmuls), about 2.4x faster on a CPU with native bf16, but the KL reads low (bf16 "
            "logits round away part of the two models' difference: 7-10% low on SmolLM2-135M, "
            "docs/experiments/imdb-matched-kl.md)"
        },
    )

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 1 or self.max_new_tokens < 1 or not self.temperature > 0:
            problem = "samples_per_prompt and max_new_tokens must be ≥ 1, temperature > 0"
            raise field_error("samples_per_prompt", problem)
        if self.batch_size is not None and self.batch_size < 1:
            raise field_error("batch_size", f"must be at least 1 or null, got {self.batch_size}")


@dataclass
class ServerConfig:
    """The vllm-server backend: a vLLM server started from its own environment, or one already running."""

    python: str | None = field(
        default=None,
        metadata={
            "help": "the vLLM environment's interpreter; null: $HARNESS_VLLM_PYTHON, else the one "
            "`harness vllm install` made"
        },
    )
    base_url: str | None = field(
        default=None, metadata={"help": "a running OpenAI-compatible server (http://HOST:PORT/v1); null: start one"}
    )
    served_name: str | None = field(
        default=None, metadata={"help": "the running server's model name; null: the model folder"}
    )
    concurrent: int = field(default=8, metadata={"help": "requests in flight (lm-eval's num_concurrent)"})
    max_model_len: int = field(default=2048, metadata={"help": "the server's context length in tokens"})
    dtype: Literal["float32", "bfloat16", "float16"] | None = field(
        default=None,
        metadata={
            "help": "the started server's weights dtype (float32, bfloat16, float16); null: the model's own "
            "(config.json), as the hf backend and plain lm_eval load it"
        },
    )

    def __post_init__(self) -> None:
        for name in ("concurrent", "max_model_len"):
            if getattr(self, name) < 1:
                raise field_error(name, f"must be a positive integer, got {getattr(self, name)}")


@dataclass
class WinrateEval:
    """Each model's answers to a prompt set, judged pairwise against the baseline's (docs/winrate.md)."""

    judge: JudgeChoice = field(metadata={"help": "who decides each pair: one of url (with model), serve, reward_model"})
    prompts: str = field(
        default="hh-helpful",
        metadata={
            "help": "hh-helpful (Anthropic-HH helpful-base test, first turn) or ifeval, read from eval.data_dir; "
            "a JSONL of {prompt, id}; or hub:ORG/NAME[:SPLIT]"
        },
    )
    limit: int | None = field(default=100, metadata={"help": "the first N prompts; null: all"})
    max_new_tokens: int = field(default=256, metadata={"help": "an answer's maximum length in new tokens"})
    batch_size: int = field(default=8, metadata={"help": "answers generated per batch"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples of the prompts"})
    seed: int = field(default=0, metadata={"help": "the bootstrap's seed"})

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size", "bootstrap"):
            if getattr(self, name) < 1:
                raise field_error(name, f"must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise field_error("limit", f"must be positive or null, got {self.limit}")

    @property
    def needs_benchmarks(self) -> bool:
        """Whether the prompts are read from the benchmark data folder (eval.data_dir)."""
        return self.prompts in ("hh-helpful", "ifeval")


@dataclass
class EvalConfig:
    """What every model (the base and each trained one) is evaluated on."""

    sentiment: SentimentEval | None = field(
        default_factory=SentimentEval,
        metadata={
            "help": "positive rate and sequence KL to the base model on the held-out openings (without "
            "sentiment data: the last built-in ones); null: none"
        },
    )
    suite: str | None = field(
        default=None, metadata={"help": "a built-in suite (smoke, paper) or a suite YAML file; null: no benchmarks"}
    )
    limit: int | None = field(default=None, metadata={"help": "at most N documents per task; null: the suite's limit"})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "benchmark files laid out as ../shared/benchmarks, prepared offline by the run; "
            "benchmarks run only when it and suite are set"
        },
    )
    when_unavailable: Literal["skip", "error"] = field(
        default="skip",
        metadata={"help": "when data_dir is not a folder: skip the benchmarks (noted in the result) or stop"},
    )
    batch_size: int | Literal["auto"] | None = field(
        default=None,
        metadata={
            "help": "lm-eval's batch size for every request (auto: lm-eval's largest that fits); null: per request "
            "type, each never slower than plain lm_eval's batch of 1 on a CPU (hf on a CPU: generation 1, "
            "log-likelihood 8; on a GPU 8 and 8; docs/performance.md)"
        },
    )
    backend: Literal["hf", "vllm", "vllm-server"] = field(
        default="hf",
        metadata={
            "help": "hf: transformers in this process; vllm: vLLM in this process (an environment with "
            "vLLM); vllm-server: a vLLM server from its own environment (see server)"
        },
    )
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"help": "the vllm-server backend"})
    shards: int = field(
        default=1,
        metadata={
            "help": "answer in this many processes (each its own model or server) on disjoint parts of the "
            "requests, then score them together: the same results as one process"
        },
    )
    apply_chat_template: bool | None = field(
        default=None, metadata={"help": "format prompts with the model's chat template; null: as the suite says"}
    )
    # The training seed never reaches the evaluation: few-shot examples are those of a plain `lm_eval` run.
    seed: int | None = field(
        default=None, metadata={"help": "one value for lm-eval's four seeds; null: lm-eval's defaults"}
    )
    checkpoints: Literal["final", "all"] | int = field(
        default="final",
        metadata={
            "help": "which models of a training run are evaluated: final (the final model), all (every saved "
            "checkpoint too: training.save_every, keep_checkpoints null), or N (the checkpoints every N steps, "
            "a multiple of save_every); they make each run's (KL, reward) path, the matched-KL verdicts and "
            "the report's curves over steps"
        },
    )
    winrate: WinrateEval | None = field(
        default=None,
        metadata={
            "help": "the win rate of each final model (the base model too) against the baseline of its seed, "
            "judged pairwise in both orders, length-controlled (docs/winrate.md); null: none"
        },
    )
    checkpoint_benchmarks: bool = field(
        default=True,
        metadata={
            "help": "evaluate checkpoints on the suite too (benchmark curves over steps); false: the judges "
            "(sentiment) only"
        },
    )
    gen_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "generation arguments for every generative task of the suite, lm-eval's --gen_kwargs as a "
            "mapping ({max_gen_toks: 256, temperature: 0}); a suite task's own generation_kwargs win; null: none"
        },
    )
    system_instruction: str | None = field(
        default=None, metadata={"help": "a system instruction before every prompt (lm-eval's --system_instruction)"}
    )
    fewshot_as_multiturn: bool | None = field(
        default=None,
        metadata={
            "help": "with the chat template: few-shot examples as turns of the chat (true) or one user turn "
            "(false); null: the suite's, else lm-eval's default (true)"
        },
    )

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise field_error("shards", f"must be a positive integer, got {self.shards}")
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise field_error("batch_size", f"must be a positive integer, auto or null, got {self.batch_size}")
        self._check_lm_eval_settings()
        if isinstance(self.checkpoints, int) and self.checkpoints < 1:
            raise field_error(
                "checkpoints", f"must be final, all or a positive number of steps, got {self.checkpoints}"
            )

    def _check_lm_eval_settings(self) -> None:
        """gen_kwargs, system_instruction and fewshot_as_multiturn, as ``harness eval`` checks its flags."""
        from tokenpo.evals.generation import prompt_settings_problem

        if problem := prompt_settings_problem(self.gen_kwargs, self.system_instruction):
            raise field_error(*problem)
        if self.fewshot_as_multiturn is True and self.apply_chat_template is False:
            raise field_error("fewshot_as_multiturn", "needs apply_chat_template (turns exist only in a chat)")

    def wants_checkpoint(self, step: int) -> bool:
        """Whether the checkpoint saved after ``step`` is evaluated."""
        if self.checkpoints == "final":
            return False
        return self.checkpoints == "all" or step % self.checkpoints == 0


@dataclass
class ReportConfig:
    """The leaderboard (printed, leaderboard.md) and the HTML report."""

    baseline: str = field(default="dpo", metadata={"help": "the methods[] name the leaderboard's deltas are against"})
    html: bool = field(default=True, metadata={"help": "write report.html"})
    equivalence_margin: float = field(
        default=DEFAULT_MARGIN,
        metadata={
            "help": "the verdicts' equivalence margin in the headline metric's units (0.05: five points of "
            "positive rate): equivalent when the whole interval of Δ lies inside ±margin"
        },
    )

    def __post_init__(self) -> None:
        if not 0 < self.equivalence_margin < 1:
            raise field_error("equivalence_margin", f"must be in (0, 1), got {self.equivalence_margin}")


@dataclass
class RunConfig:
    """The whole of ``harness run``'s YAML."""

    name: str = field(metadata={"help": "the run's name: lower-case letters, digits, '.', '_', '-'"})
    data: DataConfig = field(metadata={"help": "the preference data: a file or hub dataset, or sentiment pairs"})
    methods: list[MethodRun] = field(metadata={"help": "the methods to train, each with its own name and seeds"})
    output_dir: str = field(
        default="runs/{name}", metadata={"help": "the run's folder; {name} is replaced by the run's name"}
    )
    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "the base model: a built-in name, a model folder or a hub id"}
    )
    training: TrainingConfig = field(
        default_factory=TrainingConfig, metadata={"help": "training settings every method shares"}
    )
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "what every model is evaluated on"})
    report: ReportConfig = field(default_factory=ReportConfig, metadata={"help": "the leaderboard and report"})
    executor: ExecutorConfig = field(
        default_factory=ExecutorConfig, metadata={"help": "where the stages run: here, or as Slurm jobs"}
    )
    sweep: SweepConfig | None = field(
        default=None,
        metadata={
            "help": "a grid over method and training keys: each swept method becomes one run per "
            "combination of values (and seed); null: the methods as listed"
        },
    )

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise field_error("name", f"must be lower-case letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.methods:
            raise field_error("methods", "list at least one method to train")
        if self.sweep is not None and self.sweep.grid:
            self._expand_sweep(self.sweep)
        names = [run.name for run in self.methods]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise field_error("methods", f"two methods are named {duplicate!r}; names must be unique")
        if self.report.baseline not in names:
            baseline = self.report.baseline
            raise field_error("report", f"baseline {baseline!r} is not one of the methods: {', '.join(names)}")
        if self.eval.checkpoints != "final":
            self._check_checkpoints_are_kept()

    def _check_checkpoints_are_kept(self) -> None:
        """Evaluating checkpoints needs every method to save them, at the steps asked for, and keep them."""
        every = self.eval.checkpoints
        for run in self.methods:
            training = {**to_mapping(self.training), **run.training}
            save_every, keep = training.get("save_every", 0), training.get("keep_checkpoints")
            if not save_every:
                raise field_error(
                    "eval", f"checkpoints: {every}, but method {run.name!r} saves none (set training.save_every)"
                )
            if keep is not None:
                raise field_error(
                    "eval",
                    f"checkpoints: {every}, but method {run.name!r} keeps only the newest "
                    f"{keep} (set training.keep_checkpoints: null)",
                )
            if isinstance(every, int) and every % save_every:
                raise field_error(
                    "eval",
                    f"checkpoints: every {every} steps, but method {run.name!r} saves every "
                    f"{save_every} (a multiple of training.save_every is needed)",
                )

    def _expand_sweep(self, sweep: SweepConfig) -> None:
        expanded = expand_entries([to_mapping(run) for run in self.methods], sweep)
        variants = [entry["name"] for origin, entry in expanded if origin == self.report.baseline]
        if variants and self.report.baseline not in variants:
            raise field_error(
                "report",
                f"baseline {self.report.baseline!r} is swept into {', '.join(variants)}: name one of them "
                "(report.baseline), or leave it out of sweep.methods",
            )
        self.methods = []
        for _, entry in expanded:
            try:
                self.methods.append(from_mapping(MethodRun, entry, "sweep", entry["name"]))
            except ConfigError as error:  # a grid key or value the method refuses, named with its run
                raise field_error("sweep", f"{error.key}: {error.problem}") from None

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
