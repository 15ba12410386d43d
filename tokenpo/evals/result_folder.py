"""One evaluation's result folder: lm-eval's results as its tracker records them, plus our ``harness`` block.

The files themselves are written by :mod:`tokenpo.evals.results` (docs/file-formats.md): the samples,
then ``results.json``, then lm-eval's own layout of the same files.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tokenpo.core.catalog import headlines, load_catalog
from tokenpo.evals.evaluation import Evaluation
from tokenpo.evals.identity import RunIdentity
from tokenpo.evals.results import (
    LmEvalLayout,
    harness_version,
    link_lm_eval_layout,
    write_results,
    write_samples,
)
from tokenpo.evals.task_files import task_names
from tokenpo.evals.tasks.configs import TaskConfigs


def write_result_folder(
    evaluation: Evaluation,
    configs: TaskConfigs,
    identity: RunIdentity,
    journal: Path,
    results: dict[str, Any],
    tracker: Any,
) -> tuple[dict[str, Any], list[Path], LmEvalLayout]:
    """Write ``evaluation``'s result folder from lm-eval's ``results`` (and its ``EvaluationTracker``).

    Returns what ``results.json`` holds, the sample files written and the same files under lm-eval's names.
    ``config.gen_kwargs`` is what lm-eval records there for its ``--gen_kwargs`` (they reach the tasks
    another way here, :func:`tokenpo.evals.api.score_with_lm_eval`)."""
    config = {
        **results["config"],
        "batch_size": evaluation.batches,
        "gen_kwargs": evaluation.generation.general or None,
    }
    results = {**results, **lm_eval_tracker_fields(results, tracker, evaluation.model), "config": config}
    harness = harness_block(evaluation, configs, identity, journal, results)
    sample_files = [
        write_samples(evaluation.output_dir, task, rows) for task, rows in results.get("samples", {}).items()
    ]
    results_path = write_results(evaluation.output_dir, results, harness)
    layout = link_lm_eval_layout(evaluation.output_dir, results["model_name_sanitized"], results_path, sample_files)
    body = {k: v for k, v in results.items() if k != "samples"}
    body["harness"] = harness
    return body, sample_files, layout


def harness_block(
    evaluation: Evaluation,
    configs: TaskConfigs,
    identity: RunIdentity,
    journal: Path,
    results: dict[str, Any],
) -> dict[str, Any]:
    """The ``harness`` block of ``results.json`` (``results``: lm-eval's)."""
    scores = results["results"]
    model = evaluation.model
    named = evaluation.model_is_named
    used = {configs.tasks.get(n) for n in scores} | {configs.tasks.get(n) for n in task_names(evaluation)}
    return {
        "model_spec": str(model) if named else type(model).__name__,
        "model_path": str(model) if named else None,
        "weights_sha256": identity.model["weights"].get("sha256"),
        "model_identity": identity.model,
        "dtype": identity.model["dtype"],
        "method": "base",
        "seed": evaluation.seed,  # None: lm-eval's defaults, listed in lm_eval_seeds
        "lm_eval_seeds": identity.seeds,
        "run": None,
        **(evaluation.metadata or {}),
        "suite": evaluation.suite.name,
        "headline": headlines(load_catalog(), scores),
        "data_source": identity.data["source"],
        "data_dir": str(evaluation.data_dir) if evaluation.data_dir else None,
        "data_checksums": configs.checksums,
        "data_notes": {b: note for b, note in configs.notes.items() if b in used},
        "harness_version": harness_version(),
        "backend": evaluation.backend,
        "batch_size": evaluation.batches,
        "journal": journal.name,
        "sandbox": asdict(evaluation.sandbox),
        **prompting_block(evaluation, results["configs"]),
    }


def prompting_block(evaluation: Evaluation, configs: dict[str, Any]) -> dict[str, Any]:
    """How prompts were made and answers generated (lm-eval's ``--system_instruction``,
    ``--fewshot_as_multiturn``, ``--gen_kwargs``, ``--predict_only``): the values the run used, and for
    every generative task each generation argument set by the suite or the evaluation, with its source."""
    generation = evaluation.generation
    return {
        "system_instruction": evaluation.instruction,
        "fewshot_as_multiturn": evaluation.multiturn,
        "gen_kwargs": {
            "given": dict(generation.given) or None,
            "suite": dict(generation.suite) or None,
            "tasks": generation.record(configs),
        },
        "predict_only": evaluation.predict_only,
    }


def lm_eval_tracker_fields(results: dict[str, Any], tracker: Any, model: Any) -> dict[str, Any]:
    """What lm-eval's ``EvaluationTracker`` adds to a results file: its general config (chat template and
    its hash, system instruction, few-shot as multi-turn, model name, times) and each task's hash over
    its samples' document, prompt and target hashes."""
    from lm_eval.utils import hash_string, sanitize_model_name

    general = tracker.general_config_tracker
    general.model_name = str(model) if isinstance(model, str | os.PathLike) else type(model).__name__
    general.model_name_sanitized = sanitize_model_name(folder_name(model))
    general.log_end_time()
    task_hashes = {
        task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))
        for task, samples in results.get("samples", {}).items()
    }
    return {"task_hashes": task_hashes, **asdict(general)}


def folder_name(model: Any) -> str:
    """What names the model's folder in lm-eval's layout (``model_name_sanitized``): a hub id as lm-eval
    does (``org/name`` → ``org__name``), a local folder by its own name. lm-eval would name it after
    the whole path, which puts the machine's folders (the user's home among them) into the result
    folder's name: ``__home__ada__.cache__tokenpo__models__smollm2-135m-instruct``."""
    if not isinstance(model, str | os.PathLike):
        return type(model).__name__
    path = Path(model)
    return path.resolve().name if path.exists() else str(model)
