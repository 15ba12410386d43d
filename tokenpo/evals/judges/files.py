"""The judges on files: read inputs (JSONL/JSON/text, optionally gzipped), score, write a result folder.

Each writes ``OUT/results.json`` (lm-eval's shape, task = the judge's name, plus the ``harness``
block) and ``OUT/samples/JUDGE.jsonl`` with one row per scored item (``doc_id`` = 0-based index;
the sentiment judge adds ``prompt_id`` when its records name their prompts, several samples per prompt).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenpo.core.files import sha256_file
from tokenpo.core.stats import mean_and_stderr
from tokenpo.evals.data.converters import read_jsonl
from tokenpo.evals.errors import EvalError
from tokenpo.evals.io import read_text
from tokenpo.evals.judges import passk, rouge, sentiment
from tokenpo.evals.results import harness_version, judge_results, write_results, write_samples
from tokenpo.sandbox import IsolationMissing, SandboxLimits


def read_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for a JSONL file (optionally .gz) or a JSON array of objects."""
    path = Path(path)
    if path.name.endswith((".json", ".json.gz")):
        try:
            rows = json.loads(read_text(path))
        except json.JSONDecodeError as error:
            raise EvalError(f"{path}:{error.lineno}", "json", error.msg) from error
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise EvalError(str(path), "file", "expected a JSON array of objects")
        return [(f"{path}: record {i + 1}", r) for i, r in enumerate(rows)]
    return [(f"{path}:{line}", record) for line, record in read_jsonl(path)]


def read_texts(path: Path, field: str = "text") -> list[str]:
    """Texts from JSONL/JSON records' ``field``, or from a ``.txt`` file (one text per line)."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.is_file():
            raise EvalError(str(path), "file", "no such file")
        return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    texts = []
    for where, record in read_records(path):
        if not isinstance(record.get(field), str):
            raise EvalError(where, field, "missing or not a string")
        texts.append(record[field])
    return texts


def _string_field(where: str, record: dict[str, Any], name: str) -> str:
    if not isinstance(record.get(name), str):
        raise EvalError(where, name, "missing or not a string")
    return record[name]


def _meta(inputs: Sequence[Path], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "data_source": "files",
        "data_checksums": {str(p): sha256_file(Path(p)) for p in inputs},
        "harness_version": harness_version(),
        **extra,
    }


def judge_passk(
    problems_file: Path,
    samples_file: Path,
    ks: Sequence[int],
    out_dir: Path,
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    require_isolation: Sequence[str] = (),
) -> dict[str, Any]:
    """pass@k of the samples; ``require_isolation`` names sandbox protections without which nothing runs."""
    limits = limits or SandboxLimits()
    problems: dict[str, dict[str, Any]] = {}
    for where, record in read_records(problems_file):
        task_id = record.get("task_id")
        if not isinstance(task_id, str | int):
            raise EvalError(where, "task_id", "missing")
        problems[str(task_id)] = record
    samples = []
    for where, record in read_records(samples_file):
        task_id = record.get("task_id")
        if not isinstance(task_id, str | int):
            raise EvalError(where, "task_id", "missing")
        samples.append({"task_id": str(task_id), "completion": _string_field(where, record, "completion")})
    try:
        scores = passk.score_samples(problems, samples, ks, limits, workers, require=require_isolation)
    except IsolationMissing as error:
        raise EvalError("--require-isolation", ",".join(require_isolation), str(error)) from None
    rows = [
        {
            "doc_id": index,
            "task_id": score.task_id,
            "n": score.n,
            "c": score.c,
            **{f"pass@{k}": value for k, value in score.pass_at.items()},
            "outcomes": [
                {
                    "passed": o.passed,
                    "reason": o.reason,
                    "seconds": o.seconds,
                    "isolation": o.isolation,
                    "missing": o.missing,
                }
                for o in score.outcomes
            ],
        }
        for index, score in enumerate(scores)
    ]
    metrics = {f"pass@{k}": mean_and_stderr([s.pass_at[k] for s in scores]) for k in ks}
    results = judge_results(
        "passk",
        metrics,
        len(scores),
        {"k": list(ks), "sandbox": limits.__dict__, "sandbox_isolation": _isolation_summary(scores)},
        {f"pass@{k}": True for k in ks},
    )
    write_samples(out_dir, "passk", rows)
    write_results(out_dir, results, _meta([problems_file, samples_file], {"judge": "passk"}))
    return results


def _isolation_summary(scores: Sequence[passk.ProblemScore]) -> dict[str, Any]:
    """The protections every sample had, and those any sample lacked (normally the same for all)."""
    outcomes = [o for score in scores for o in score.outcomes]
    achieved = [set(o.isolation.split(",")) for o in outcomes]
    missing = sorted({m for o in outcomes for m in o.missing.split(",") if m})
    return {"achieved": sorted(set.intersection(*achieved)) if achieved else [], "missing": missing}


def judge_sentiment(
    texts_file: Path,
    out_dir: Path,
    model: str | None = None,
    kl_models: tuple[Any, Any, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """P(positive) per text; with ``kl_models`` = (policy, reference, tokenizer), also the sequence KL.

    KL needs records with ``prompt`` and ``completion`` (the text scored is the completion).
    Metrics (docs/file-formats.md, sentiment control): ``p_positive``, ``positive_rate`` and, with
    models, ``kl_to_ref``. ``metadata`` goes into the results' ``harness`` block (method, seed, …).
    """
    records = read_records(texts_file) if Path(texts_file).suffix != ".txt" else None
    if kl_models is not None:
        if records is None:
            raise EvalError(str(texts_file), "format", "the KL needs JSONL records with prompt and completion")
        prompts = [_string_field(w, r, "prompt") for w, r in records]
        texts = [_string_field(w, r, "completion") for w, r in records]
    else:
        texts = (
            read_texts(texts_file)
            if records is None
            else [
                r["text"] if isinstance(r.get("text"), str) else _string_field(w, r, "completion") for w, r in records
            ]
        )
    p_positive = sentiment.score_texts(texts, model)
    positive = [float(sentiment.is_positive(p, model)) for p in p_positive]
    rows = [
        {"doc_id": i, "p_positive": p, "positive_rate": pos}
        for i, (p, pos) in enumerate(zip(p_positive, positive, strict=True))
    ]
    # Several samples of one prompt share its difficulty: the prompt is what the leaderboard resamples.
    prompt_ids = _prompt_ids(records)
    if prompt_ids is not None:
        for row, prompt_id in zip(rows, prompt_ids, strict=True):
            row["prompt_id"] = prompt_id
    metrics = {"p_positive": mean_and_stderr(p_positive), "positive_rate": mean_and_stderr(positive)}
    if kl_models is not None:
        policy, reference, tokenizer = kl_models
        kl = sentiment.sequence_kl(policy, reference, tokenizer, prompts, texts)
        for row, value in zip(rows, kl, strict=True):
            row["kl_to_ref"] = value
        metrics["kl_to_ref"] = mean_and_stderr(kl)
    results = judge_results(
        "sentiment",
        metrics,
        len(texts),
        {"classifier": model or "vader"},
        {"p_positive": True, "positive_rate": True, "kl_to_ref": False},
    )
    write_samples(out_dir, "sentiment", rows)
    extra = {"judge": "sentiment", "classifier": model or "vader", **(metadata or {})}
    write_results(out_dir, results, _meta([texts_file], extra))
    return results


def _prompt_ids(records: list[tuple[str, dict[str, Any]]] | None) -> list[int] | None:
    """Each record's prompt as a number (in order of first appearance), when every record names its prompt."""
    if not records or not all(isinstance(record.get("prompt"), str) for _, record in records):
        return None
    ids: dict[str, int] = {}
    return [ids.setdefault(record["prompt"], len(ids)) for _, record in records]


def judge_rouge(
    predictions_file: Path,
    references_file: Path,
    out_dir: Path,
    stemming: bool = True,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Predictions and references: ``.txt`` (one per line) or JSONL/JSON with ``prediction`` / ``reference``."""
    predictions = read_texts(predictions_file, "prediction")
    references = read_texts(references_file, "reference")
    scores = rouge.score_pairs(predictions, references, stemming)
    metrics, extra = {}, {}
    for name, interval in rouge.score_intervals(scores, resamples, seed=seed).items():
        metrics[name] = (interval.value, interval.stderr)
        extra[f"{name}_ci95_low,none"], extra[f"{name}_ci95_high,none"] = interval.low, interval.high
    results = judge_results(
        "rouge",
        metrics,
        len(scores),
        {"stemming": stemming, "bootstrap_resamples": resamples},
        dict.fromkeys(rouge.ROUGE_TYPES, True),
    )
    results["results"]["rouge"].update(extra)
    write_samples(out_dir, "rouge", [{"doc_id": i, **s} for i, s in enumerate(scores)])
    write_results(out_dir, results, _meta([predictions_file, references_file], {"judge": "rouge"}))
    return results
