"""Step time and peak memory of one method: what the bench measures (``bench/tokenpo_bench/training.py``
runs it once per fresh process: peak RSS only grows within a process)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import PreferenceExample, TruncationPolicy, tokenize_examples
from tokenpo.trainers.loop import Trainer
from tokenpo.trainers.run import load_training_tokenizer, new_accelerator
from tokenpo.trainers.runfolder import RunFolder


@dataclass(frozen=True)
class StepBenchmark:
    method: str
    step_seconds: list[float]  # each measured optimiser step
    precompute_seconds: float  # the one-off reference pass (0 when the method runs it live)
    peak_rss_gb: float  # the process's peak resident memory, set-up included
    tokens_per_step: int
    optimizer: str = ""  # what stepped the weights (describe_optimizer)

    @property
    def median_step_seconds(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def mean_step_seconds(self) -> float:
        return statistics.fmean(self.step_seconds)


def describe_optimizer(optimizer) -> str:
    """The optimiser's class and settings (unwrapping accelerate's wrapper), so a comparison can show it
    matched: ``AdamW(betas=(0.9, 0.999), eps=1e-08, …, fused=True, group weight_decay=[0.0])``."""
    inner = getattr(optimizer, "optimizer", optimizer)
    keys = ("betas", "eps", "amsgrad", "foreach", "fused")
    settings = [f"{k}={inner.defaults[k]!r}" for k in keys if k in inner.defaults]
    decays = sorted({group.get("weight_decay") for group in inner.param_groups}, key=str)  # groups override defaults
    return f"{type(inner).__name__}({', '.join(settings)}, group weight_decay={decays})"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def benchmark_steps(
    config: TrainConfig,
    model_path: str,
    examples: Sequence[PreferenceExample],
    scratch: Path,
    steps: int,
    warmup: int = 1,
) -> StepBenchmark:
    """Build the trainer as ``train()`` does, then time ``warmup + steps`` optimiser steps (no files written
    but ``scratch``'s config). Every step uses the same global batch when ``examples`` holds exactly one."""
    t = config.training
    tokenizer = load_training_tokenizer(model_path)
    pairs = tokenize_examples(examples, tokenizer, TruncationPolicy(t.max_length, t.max_prompt_length))
    accelerator = new_accelerator(t.mixed_precision)
    trainer = Trainer(config, model_path, pairs, tokenizer, RunFolder(scratch), accelerator, "bench")
    trainer.build(None)
    started = time.perf_counter()
    trainer.precompute()
    precompute = time.perf_counter() - started if trainer.engine.needs_cache else 0.0
    times = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        trainer.step(step)
        times.append(time.perf_counter() - started)
    tokens = sum(len(p.prompt_ids) * 2 + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    steps_per_epoch = max(1, len(pairs) // trainer.schedule.global_batch)
    return StepBenchmark(
        config.method.label,
        times[warmup:],
        precompute,
        peak_rss_gb(),
        tokens // steps_per_epoch,
        describe_optimizer(trainer.optimizer),
    )
