"""``train()``: a training run in its folder — start, resume after a kill, or recognise it is done.

The public entry wires three jobs kept apart: the run folder and its resume policy
(:mod:`tokenpo.trainers.runfolder`), the loop that trains (:mod:`tokenpo.trainers.loop`), and the
micro-batch forwards (:mod:`tokenpo.trainers.engine`) the loop calls.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from accelerate import Accelerator
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tokenpo.core import progress
from tokenpo.core.hardware import native_bf16
from tokenpo.core.weights import read_weights_origin
from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import PreferenceExample, TruncationPolicy, tokenize_examples
from tokenpo.trainers.loop import Trainer
from tokenpo.trainers.runfolder import RunFolder, TrainResult, fingerprint_of

__all__ = ["TrainResult", "load_training_tokenizer", "new_accelerator", "train"]


def train(
    config: TrainConfig,
    model_path: str,
    examples: Sequence[PreferenceExample],
    output_dir: str | os.PathLike[str],
    config_record: Mapping | None = None,
) -> TrainResult:
    """Train ``model_path`` (a local folder or hub id) on ``examples`` into the run folder ``output_dir``.

    Resumes from the latest checkpoint when the folder holds an unfinished run of the same
    fingerprint (``training.resume: auto``); returns at once when it holds the finished run.
    ``config_record`` is what ``config.yaml`` records (default: ``config`` itself and the model), with
    ``base_weights`` added when the model folder's manifest says where its weights came from.
    Progress (reference log-probs, steps) and each training-health warning as it first appears are
    reported through :mod:`tokenpo.core.progress`, drawn however the caller chose.
    Raises :class:`TrainingError` on a non-finite loss or gradient, naming the step.
    """
    run = RunFolder(output_dir)
    tokenizer = load_training_tokenizer(model_path)
    t = config.training
    pairs = tokenize_examples(examples, tokenizer, TruncationPolicy(t.max_length, t.max_prompt_length))
    fingerprint = fingerprint_of(config, model_path, pairs)
    finished = run.finished(fingerprint)
    if finished is not None:
        return finished
    accelerator = new_accelerator(t.mixed_precision, log_with=t.report_to or None, project_dir=str(run.root))
    resume_from = run.resume_point(t.resume, fingerprint)
    if accelerator.is_main_process:
        run.prepare(recorded_config(config, model_path, config_record))
    accelerator.wait_for_everyone()
    trainer = Trainer(config, model_path, pairs, tokenizer, run, accelerator, fingerprint)
    return trainer.run(resume_from)


def recorded_config(config: TrainConfig, model_path: str, config_record: Mapping | None) -> dict:
    """What ``config.yaml`` records: ``config_record`` (default: ``config`` and the model) and, when the model
    folder's manifest says, where the base weights came from (``base_weights``), because weights dequantised
    from a GGUF quantisation are not the original ones the model's name suggests."""
    record = dict(config_record) if config_record else {"model": str(model_path), **dataclasses.asdict(config)}
    origin = read_weights_origin(model_path)
    if origin is not None:
        record.setdefault("base_weights", origin.as_record())
    return record


def load_training_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def new_accelerator(mixed_precision: str, **kwargs) -> Accelerator:
    """An Accelerator for one run. accelerate keeps its settings process-wide; a process that trains
    several runs (a pipeline) resets them, keeping the process group of a distributed launch."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    if mixed_precision == "bf16" and not native_bf16():
        # Seen on a 2-core AVX2 EPYC: the quickstart's DPO at ~1 step a minute under emulated bf16 autocast
        # (sharing the CPU with another job) against ~4 s a step in float32. Autocast only changes the matmuls'
        # precision (weights and optimiser stay float32), so float32 computes the same method, more exactly.
        progress.note(
            "warning: training.mixed_precision is bf16 but this CPU has no native bf16 (no AVX512-BF16/AMX), "
            "where autocast emulates it many times slower: training in float32 instead"
        )
        mixed_precision = "no"
    return Accelerator(mixed_precision=mixed_precision, **kwargs)
