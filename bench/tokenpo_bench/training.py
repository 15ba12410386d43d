"""Training step time and peak memory: our trainers against TRL's DPOTrainer, and each method against our DPO.

Every measurement is one fresh process (:func:`tokenpo_bench.processes.run_isolated`) that loads
SmolLM2 in bf16 weights, builds the trainer, runs one warm-up optimiser step and times ``steps``
more; its statistic is the median step (the mean over whole periods for a contender with periodic
extra work, TI-DPO anchors every 8 steps, whose cost a median would hide). Rounds alternate the
contenders; a contender's value is the median over rounds.

Both sides see the same token ids: HH-RLHF helpful-base test pairs whose prompt + shorter
completion reach exactly the shape's length (:func:`select_pairs`), tokenised by our data path and
handed to TRL as ``prompt_ids``/``chosen_ids``/``rejected_ids`` (its own tokenisation is skipped),
with the same batch, no gradient accumulation, pure bf16 weights (no autocast on either side), no
gradient checkpointing, the same AdamW (TRL's default, torch's fused kernel; lr 1e-6, β 0.9/0.999, ε 1e-8,
no weight decay, clipping 1.0): each run records the optimiser that stepped its weights.

Why one module: the two contenders' set-ups (ours and TRL's) are kept side by side
so that every setting that must match can be checked against the other in one read.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tokenpo.harness.errors import HarnessError
from tokenpo_bench.processes import alternation_order, run_isolated
from tokenpo_bench.report import Row, Target, compare

HH_FILE = Path("hh_rlhf") / "helpful-base_test.jsonl.gz"
LEARNING_RATE = 1e-6
TRL_DPO_STEP = Target("<=", 0.75)
TRL_DPO_MEMORY = Target("<=", 1.0)
SPARSEPO_STEP = Target("<=", 1.15)
TIDPO_STEP = Target("<=", 1.5)


@dataclass(frozen=True)
class Shape:
    """``pairs`` preference pairs, each row exactly ``tokens`` long, the prompt at most ``prompt_tokens``."""

    pairs: int
    tokens: int
    prompt_tokens: int

    @property
    def label(self) -> str:
        return f"{self.pairs}x{self.tokens}"


# The shape, and a longer one: HH helpful-base has no pair whose 256-token-capped prompt plus
# shorter completion reaches 512, so the longer shape lets prompts take up to 448 tokens.
MAIN_SHAPE = Shape(4, 256, 128)
LONG_SHAPE = Shape(4, 512, 448)


@dataclass(frozen=True)
class Contender:
    """One way to train: ours (a method mapping for ``TrainConfig``) or TRL's DPOTrainer."""

    name: str
    side: Literal["ours", "trl"]
    description: str
    method: dict[str, Any] = field(default_factory=lambda: {"name": "dpo"})
    precompute_reference: bool = True
    period: int = 1  # steps between periodic extra work; measured steps are whole periods, averaged


TRL_LIVE = Contender("trl-dpo-live", "trl", "TRL DPOTrainer, live reference (its default)", precompute_reference=False)
TRL_CACHED = Contender("trl-dpo-precomputed", "trl", "TRL DPOTrainer, precompute_ref_log_probs=True")
DPO_LIVE = Contender("dpo-live", "ours", "our DPO, live reference", precompute_reference=False)
DPO = Contender("dpo", "ours", "our DPO, reference log-probs precomputed (our default)")
METHODS = (
    Contender("tdpo2", "ours", "TDPO-2 (kl_alpha 0.5), live reference", {"name": "tdpo", "variant": "tdpo2"}),
    Contender("sparsepo-activation", "ours", "SparsePO, activation masks", {"name": "sparsepo", "mask": "activation"}),
    Contender(
        "sparsepo-learned-common",
        "ours",
        "SparsePO, learned common masks",
        {"name": "sparsepo", "mask": "learned", "heads": "common"},
    ),
    Contender(
        "tidpo-policy",
        "ours",
        "TI-DPO (TDPO-2 KL term, live reference), policy importance each step, no anchors",
        {"name": "tidpo", "importance_source": "policy", "gamma": 0.0},
    ),
    Contender(
        "tidpo-ref-anchors-1",
        "ours",
        "TI-DPO (TDPO-2 KL term), reference-cached importance, anchors every step (64 new tokens)",
        {"name": "tidpo", "importance_source": "reference", "anchor_every": 1, "anchor_max_new_tokens": 64},
    ),
    Contender(
        "tidpo-ref-anchors-8",
        "ours",
        "TI-DPO (TDPO-2 KL term), reference-cached importance, anchors every 8 steps (64 new tokens)",
        {"name": "tidpo", "importance_source": "reference", "anchor_every": 8, "anchor_max_new_tokens": 64},
        period=8,
    ),
)
# Which DPO a method is a ratio to: methods that run the reference live against DPO live.
LIVE_REFERENCE_METHODS = {"tdpo2", "sparsepo-activation", "sparsepo-learned-common"}


SHAPES = {shape.label: shape for shape in (MAIN_SHAPE, LONG_SHAPE)}


def contenders_for(
    sections: Sequence[str], shapes: Sequence[Shape] = (MAIN_SHAPE, LONG_SHAPE)
) -> dict[Shape, list[Contender]]:
    """The runs the chosen sections need, per shape: ``train`` runs everything on the main shape and
    ours vs TRL on the longer one; ``reference`` and ``mfu`` need our DPO both ways on the main shape."""
    plan: dict[Shape, list[Contender]] = {}
    if "train" in sections:
        if MAIN_SHAPE in shapes:
            plan[MAIN_SHAPE] = [TRL_LIVE, TRL_CACHED, DPO_LIVE, DPO, *METHODS]
        if LONG_SHAPE in shapes:
            plan[LONG_SHAPE] = [TRL_LIVE, TRL_CACHED, DPO_LIVE, DPO]
    if MAIN_SHAPE not in plan and ("reference" in sections or "mfu" in sections):
        plan[MAIN_SHAPE] = [DPO_LIVE, DPO]
    return plan


def measured_steps(contender: Contender, steps: int) -> int:
    """``steps`` rounded up to whole periods of the contender's periodic work."""
    return -(-steps // contender.period) * contender.period


def select_pairs(benchmarks: Path, model_path: str, shape: Shape) -> list:
    """The first ``shape.pairs`` HH helpful-base test pairs whose prompt + shorter completion fill the shape."""
    from tokenpo.trainers.data import TruncationPolicy, load_preferences, tokenize_example
    from tokenpo.trainers.run import load_training_tokenizer

    source = Path(benchmarks) / HH_FILE
    if not source.is_file():
        raise HarnessError(f"{source}: HH-RLHF data not found (set --benchmarks or $HARNESS_BENCHMARKS)")
    tokenizer = load_training_tokenizer(model_path)
    policy = TruncationPolicy(shape.tokens, shape.prompt_tokens)
    chosen = []
    for example in load_preferences(str(source), fmt="hh-rlhf-chat", skip_invalid=True).examples:
        pair = tokenize_example(example, tokenizer, policy)
        if len(pair.prompt_ids) + min(len(pair.chosen_ids), len(pair.rejected_ids)) == shape.tokens:
            chosen.append(example)
            if len(chosen) == shape.pairs:
                return chosen
    raise HarnessError(f"{source}: fewer than {shape.pairs} pairs reach {shape.tokens} tokens")


def _train_config(contender: Contender, shape: Shape):
    from tokenpo.core.config import from_mapping
    from tokenpo.trainers.config import TrainConfig

    return from_mapping(
        TrainConfig,
        {
            "method": contender.method,
            "training": {
                "per_device_batch_size": shape.pairs,
                "max_steps": 1000,  # the schedule's length only: the learning rate stays non-zero
                "max_length": shape.tokens,
                "max_prompt_length": shape.prompt_tokens,
                "model_dtype": "bfloat16",
                "learning_rate": LEARNING_RATE,
                "warmup_ratio": 0.0,
                "precompute_reference": contender.precompute_reference,
            },
        },
        f"bench contender {contender.name}",
    )


def _summary(
    contender: Contender, step_seconds: list[float], precompute: float, tokens: int, optimizer: str
) -> dict[str, Any]:
    from tokenpo_bench.steps import peak_rss_gb

    statistic = statistics.fmean if contender.period > 1 else statistics.median
    return {
        "contender": contender.name,
        "step_s": statistic(step_seconds),
        "statistic": "mean over whole periods" if contender.period > 1 else "median",
        "steps_s": [round(s, 4) for s in step_seconds],
        "precompute_s": precompute,
        "peak_rss_gb": peak_rss_gb(),
        "tokens_per_step": tokens,
        "optimizer": optimizer,
        "load_average_1min": os.getloadavg()[0],
    }


def _quiet() -> None:
    """A spawned run prints nothing of its own (no weight-loading or dataset bars between the bench's lines)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    datasets.disable_progress_bars()


def measure_ours(contender: Contender, shape: Shape, steps: int, model_path: str, benchmarks: str) -> dict[str, Any]:
    """In a fresh process: our trainer's step times (``tokenpo_bench.steps.benchmark_steps``)."""
    from tokenpo_bench.steps import benchmark_steps

    _quiet()
    examples = select_pairs(Path(benchmarks), model_path, shape)
    with tempfile.TemporaryDirectory() as scratch:
        result = benchmark_steps(
            _train_config(contender, shape), model_path, examples, Path(scratch), measured_steps(contender, steps)
        )
    return _summary(contender, result.step_seconds, result.precompute_seconds, result.tokens_per_step, result.optimizer)


def measure_trl(contender: Contender, shape: Shape, steps: int, model_path: str, benchmarks: str) -> dict[str, Any]:
    """In a fresh process: TRL DPOTrainer's optimiser step times, from a callback, on our token ids."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from tokenpo.trainers.data import TruncationPolicy, tokenize_examples
    from tokenpo.trainers.run import load_training_tokenizer
    from tokenpo_bench.steps import describe_optimizer

    _quiet()
    tokenizer = load_training_tokenizer(model_path)
    pairs = tokenize_examples(
        select_pairs(Path(benchmarks), model_path, shape),
        tokenizer,
        TruncationPolicy(shape.tokens, shape.prompt_tokens),
    )
    rows = [{"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids} for p in pairs]

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    precompute = {"seconds": 0.0}

    class PretokenizedDPOTrainer(DPOTrainer):
        """TRL's trainer on rows that already hold our token ids; times its reference precompute."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

        def _precompute_ref_logps(self, *args, **kwargs):
            started = time.perf_counter()
            result = super()._precompute_ref_logps(*args, **kwargs)
            precompute["seconds"] += time.perf_counter() - started
            return result

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as scratch:
        config = DPOConfig(
            output_dir=scratch,
            per_device_train_batch_size=shape.pairs,
            gradient_accumulation_steps=1,
            max_steps=1 + steps,
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            adam_beta1=0.9,
            adam_beta2=0.999,
            adam_epsilon=1e-8,
            max_grad_norm=1.0,
            max_length=None,  # the rows are already cut to the shape, as ours
            bf16=False,  # pure bf16 weights as ours: no autocast on either side
            gradient_checkpointing=False,  # ours runs without it
            precompute_ref_log_probs=contender.precompute_reference,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            seed=42,
        )
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16)
        trainer = PretokenizedDPOTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.train()
    tokens = sum(len(p.prompt_ids) * 2 + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    return _summary(contender, timer.seconds[1:], precompute["seconds"], tokens, describe_optimizer(trainer.optimizer))


@dataclass
class TrainingResults:
    """Per shape and contender: every process's summary, and the median over rounds."""

    runs: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, shape: Shape, result: dict[str, Any]) -> None:
        self.runs.setdefault(shape.label, {}).setdefault(result["contender"], []).append(result)

    def median(self, shape: Shape, contender: Contender, key: str) -> float | None:
        values = [r[key] for r in self.runs.get(shape.label, {}).get(contender.name, []) if "error" not in r]
        return statistics.median(values) if values else None

    def error(self, shape: Shape, contender: Contender) -> str | None:
        errors = [r["error"] for r in self.runs.get(shape.label, {}).get(contender.name, []) if "error" in r]
        return errors[0] if errors else None


def run_training(
    sections: Sequence[str],
    shapes: Sequence[Shape],
    rounds: int,
    steps: int,
    model_path: str,
    benchmarks: Path,
    on_run: Callable[[Shape, dict[str, Any]], None] | None = None,
    measure: Callable[..., dict[str, Any]] = run_isolated,
) -> TrainingResults:
    """Run every contender the sections need, ``rounds`` times each, alternating, one process each."""
    results = TrainingResults()
    for shape, contenders in contenders_for(sections, shapes).items():
        for _, contender in alternation_order(contenders, rounds):
            target = measure_trl if contender.side == "trl" else measure_ours
            kwargs = {
                "contender": contender,
                "shape": shape,
                "steps": steps,
                "model_path": model_path,
                "benchmarks": str(benchmarks),
            }
            result = measure(target, kwargs)
            result.setdefault("contender", contender.name)
            results.add(shape, result)
            if on_run is not None:
                on_run(shape, result)
    return results


def _failure(results: TrainingResults, shape: Shape, *contenders: Contender) -> str | None:
    """The first error of any run of ``contenders`` as ``failed: …``, or None when all ran."""
    errors = [results.error(shape, c) for c in contenders]
    first = next((e for e in errors if e), None)
    return f"failed: {first}" if first else None


def _pair(
    section: str,
    results: TrainingResults,
    shape: Shape,
    mine: Contender,
    reference: Contender,
    key: str,
    measurement: str,
    unit: str,
    target: Target | None,
) -> Row:
    return compare(
        section,
        f"{mine.name} [{shape.label}]",
        measurement,
        results.median(shape, mine, key),
        unit,
        reference.name,
        results.median(shape, reference, key),
        target,
        unavailable=_failure(results, shape, mine, reference),
    )


def training_rows(sections: Sequence[str], shapes: Sequence[Shape], results: TrainingResults) -> list[Row]:
    """Table rows: ours vs TRL in matching reference modes, each method vs our DPO, cached vs live."""
    rows: list[Row] = []
    plan = contenders_for(sections, shapes)
    if "train" in sections:
        for shape in (shape for shape, contenders in plan.items() if TRL_LIVE in contenders):
            for mine, theirs in ((DPO_LIVE, TRL_LIVE), (DPO, TRL_CACHED)):
                rows.append(
                    compare(
                        "train",
                        f"{theirs.name} [{shape.label}]",
                        "step time",
                        results.median(shape, theirs, "step_s"),
                        "s",
                        unavailable=_failure(results, shape, theirs),
                    )
                )
                rows.append(_pair("train", results, shape, mine, theirs, "step_s", "step time", "s", TRL_DPO_STEP))
                rows.append(
                    _pair("train", results, shape, mine, theirs, "peak_rss_gb", "peak RSS", "GB", TRL_DPO_MEMORY)
                )
        for method in METHODS if MAIN_SHAPE in plan and METHODS[0] in plan[MAIN_SHAPE] else ():
            baseline = DPO_LIVE if method.name in LIVE_REFERENCE_METHODS else DPO
            target = {"sparsepo": SPARSEPO_STEP}.get(method.method["name"])
            if method.name == "tidpo-ref-anchors-8":
                target = TIDPO_STEP
            rows.append(_pair("train", results, MAIN_SHAPE, method, baseline, "step_s", "step time", "s", target))
            rows.append(_pair("train", results, MAIN_SHAPE, method, baseline, "peak_rss_gb", "peak RSS", "GB", None))
    if "reference" in sections and MAIN_SHAPE in plan:
        shape = MAIN_SHAPE
        rows.append(_pair("reference", results, shape, DPO, DPO_LIVE, "step_s", "step time", "s", None))
        rows.append(_pair("reference", results, shape, DPO, DPO_LIVE, "peak_rss_gb", "peak RSS", "GB", None))
        precompute = results.median(shape, DPO, "precompute_s")
        cached, live = results.median(shape, DPO, "step_s"), results.median(shape, DPO_LIVE, "step_s")
        rows.append(compare("reference", f"dpo [{shape.label}]", "one-off precompute (all pairs)", precompute, "s"))
        if None not in (precompute, cached, live) and live > cached:
            rows.append(
                compare(
                    "reference",
                    f"dpo [{shape.label}]",
                    "break-even (steps)",
                    precompute / (live - cached),
                    "steps",
                    note="precompute / step time saved",
                )
            )
        if shape in plan and TRL_CACHED in plan[shape]:
            rows.append(
                compare(
                    "reference",
                    f"trl-dpo-precomputed [{shape.label}]",
                    "one-off precompute (all pairs)",
                    results.median(shape, TRL_CACHED, "precompute_s"),
                    "s",
                )
            )
    return rows
