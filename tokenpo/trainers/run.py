"""``train()``: a training run in its folder — start, resume after a kill, or recognise it is done.

The public entry wires three jobs kept apart: the run folder and its resume policy
(:mod:`tokenpo.trainers.runfolder`), the loop that trains (:mod:`tokenpo.trainers.loop`), and the
micro-batch forwards (:mod:`tokenpo.trainers.engine`) the loop calls.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from accelerate import Accelerator
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tokenpo.core import progress
from tokenpo.core.hardware import native_bf16
from tokenpo.core.weights import read_weights_origin
from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import PreferenceExample, TruncationPolicy, tokenize_examples
from tokenpo.trainers.engine import Engine
from tokenpo.trainers.evaluation import evaluate_pairs
from tokenpo.trainers.forward import load_policy, load_reference
from tokenpo.trainers.loop import Trainer
from tokenpo.trainers.methods import build_method, trainable_modules
from tokenpo.trainers.runfolder import RunFolder, TrainResult, fingerprint_of
from tokenpo.trainers.trackers import build_trackers, check_trackers

__all__ = ["TrainResult", "evaluate_checkpoint", "load_training_tokenizer", "new_accelerator", "train"]


def train(
    config: TrainConfig,
    model_path: str,
    examples: Sequence[PreferenceExample],
    output_dir: str | os.PathLike[str],
    config_record: Mapping | None = None,
    eval_examples: Sequence[PreferenceExample] = (),
    tracker_group: str | None = None,
) -> TrainResult:
    """Train ``model_path`` (a local folder or hub id) on ``examples`` into the run folder ``output_dir``.

    Resumes from the latest checkpoint when the folder holds an unfinished run of the same
    fingerprint (``training.resume: auto``); returns at once when it holds the finished run.
    ``config_record`` is what ``config.yaml`` records (default: ``config`` itself and the model), with
    ``base_weights`` added when the model folder's manifest says where its weights came from.
    ``eval_examples``: held-out pairs, evaluated every ``training.eval_steps`` and after the last step
    (:mod:`tokenpo.trainers.evaluation`; their metrics join that step's ``metrics.jsonl`` row).
    ``tracker_group``: the trackers' project (or group) the run is filed under (a pipeline's name); None:
    the run folder's name. Progress (reference log-probs, steps) and each training-health warning as it
    first appears are reported through :mod:`tokenpo.core.progress`, drawn however the caller chose.
    Raises :class:`TrainingError` on a non-finite loss or gradient, naming the step, and before any work
    when a tracker of ``training.report_to`` is not installed.
    """
    check_trackers(config.training.report_to)
    run = RunFolder(output_dir)
    tokenizer = load_training_tokenizer(model_path)
    t = config.training
    truncation = TruncationPolicy(t.max_length, t.max_prompt_length)
    pairs = tokenize_examples(examples, tokenizer, truncation)
    eval_pairs = tokenize_examples(eval_examples, tokenizer, truncation) if eval_examples else []
    fingerprint = fingerprint_of(config, model_path, pairs, eval_pairs)
    finished = run.finished(fingerprint)
    if finished is not None:
        return finished
    trackers = build_trackers(t.report_to, run.root, run.root.name, tracker_group)
    accelerator = new_accelerator(t.mixed_precision, log_with=trackers or None, project_dir=str(run.root))
    resume_from = run.resume_point(t.resume, fingerprint)
    if accelerator.is_main_process:
        run.prepare(recorded_config(config, model_path, config_record))
    accelerator.wait_for_everyone()
    trainer = Trainer(config, model_path, pairs, tokenizer, run, accelerator, fingerprint, eval_pairs)
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


def evaluate_checkpoint(
    config: TrainConfig,
    model_path: str,
    checkpoint: str | os.PathLike[str],
    examples: Sequence[PreferenceExample],
) -> dict[str, float]:
    """The ``eval_`` metrics of ``examples`` under a saved checkpoint (or final model) of a run of ``config``
    from ``model_path``: what the training wrote to ``metrics.jsonl`` at that step, computed apart."""
    t = config.training
    tokenizer = load_training_tokenizer(model_path)
    pairs = tokenize_examples(examples, tokenizer, TruncationPolicy(t.max_length, t.max_prompt_length))
    accelerator = new_accelerator(t.mixed_precision)
    policy = load_policy(model_path, t, weights_from=str(Path(checkpoint)))
    heads = trainable_modules(config.method, policy.config)
    for head in heads.values():
        head.load(Path(checkpoint))
    reference = None
    if t.lora is None:  # with LoRA the reference is the policy with its adapters disabled
        reference = accelerator.prepare_model(load_reference(model_path, t), evaluation_mode=True)
    model_config = policy.config
    policy = accelerator.prepare_model(policy, evaluation_mode=True)
    heads = {name: accelerator.prepare_model(head, evaluation_mode=True) for name, head in heads.items()}
    method = build_method(config.method, model_config, modules=heads)
    engine = Engine(config, method, accelerator, policy, reference, pairs, tokenizer.pad_token_id,
                    tokenizer.eos_token_id, anchored=False)  # fmt: skip
    engine.precompute()
    return evaluate_pairs(engine, [policy, *heads.values()], t.per_device_batch_size)
