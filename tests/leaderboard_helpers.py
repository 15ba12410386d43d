"""Writers of result and run folders in the formats of docs/file-formats.md, for leaderboard tests.

Values are computed from the per-item scores given, exactly as lm-eval does (mean, or Σ parts
passed / Σ parts for per-part metrics; stderr = sample sd / √n), so the files are consistent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tokenpo.leaderboards.results import ItemScores, MetricValue, Result


def _num_den(scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) and isinstance(scores[0], (list, tuple)):
        return (np.array([float(sum(s)) for s in scores]), np.array([float(len(s)) for s in scores]))
    values = np.asarray(scores, dtype=float)
    return values, np.ones_like(values)


def _stderr(num: np.ndarray, den: np.ndarray) -> float:
    per_item = num / den
    return float(per_item.std(ddof=1) / math.sqrt(per_item.size)) if per_item.size > 1 else 0.0


def write_result(
    folder: Path,
    tasks: Mapping[str, Mapping[str, Sequence]],
    method: str,
    seed: int | None = 0,
    model: str = "tiny-llama",
    samples: bool = True,
    higher_is_better: Mapping[str, bool] | None = None,
    doc_ids: Mapping[str, Sequence[int]] | None = None,
    harness: Mapping | None = None,
    prompt_ids: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Our result folder: ``results.json`` + ``samples/TASK.jsonl`` from per-item scores.

    ``tasks`` maps task → ``"METRIC,FILTER"`` → per-item scores (numbers, or lists of 0/1 parts);
    ``harness`` adds keys to the "harness" block (``method_family``, ``beta``, ``training_health``);
    ``prompt_ids`` gives a task's items the prompts they answer (several samples per prompt).
    """
    folder.mkdir(parents=True, exist_ok=True)
    results, hib, n_samples = {}, {}, {}
    for task, metrics in tasks.items():
        entry = {"alias": task}
        rows: dict[tuple[int, str], dict] = {}
        ids = list(doc_ids[task]) if doc_ids and task in doc_ids else None
        for key, scores in metrics.items():
            metric, filter_name = key.split(",")
            num, den = _num_den(scores)
            entry[key] = float(num.sum() / den.sum())
            entry[f"{metric}_stderr,{filter_name}"] = _stderr(num, den)
            hib.setdefault(task, {})[metric] = (higher_is_better or {}).get(metric, True)
            for i, score in enumerate(scores):
                doc = ids[i] if ids else i
                row = rows.setdefault((doc, filter_name), {"doc_id": doc, "filter": filter_name})
                row[metric] = score
                if prompt_ids and task in prompt_ids:
                    row["prompt_id"] = prompt_ids[task][i]
            n_samples[task] = {"original": len(scores), "effective": len(scores)}
        results[task] = entry
        if samples:
            (folder / "samples").mkdir(exist_ok=True)
            lines = [json.dumps(row) for _, row in sorted(rows.items())]
            (folder / "samples" / f"{task}.jsonl").write_text("\n".join(lines) + "\n")
    document = {
        "results": results,
        "group_subtasks": {},
        "configs": {},
        "versions": dict.fromkeys(tasks, "Yaml"),
        "n-shot": dict.fromkeys(tasks, 0),
        "higher_is_better": hib,
        "n-samples": n_samples,
        "config": {"model": "hf"},
        "harness": {"model_spec": model, "method": method, "seed": seed, "backend": "hf", **(harness or {})},
    }
    (folder / "results.json").write_text(json.dumps(document, indent=1))
    return folder


def make_result(
    tasks: Mapping[str, Mapping[str, Sequence]],
    method: str,
    seed: int | None = 0,
    model: str = "tiny-llama",
    higher_is_better: Mapping[str, bool] | None = None,
    harness: Mapping | None = None,
    prompt_ids: Mapping[str, Sequence[int]] | None = None,
) -> Result:
    """The in-memory ``Result`` that reading ``write_result``'s folder gives (for fast statistics)."""
    result = Result(
        source=f"<{method}:{seed}>",
        model=model,
        method=method,
        seed=seed,
        harness={"model_spec": model, "method": method, "seed": seed, **(harness or {})},
    )
    for task, metrics in tasks.items():
        for key, scores in metrics.items():
            num, den = _num_den(scores)
            result.metrics[(task, key)] = MetricValue(float(num.sum() / den.sum()), _stderr(num, den), len(num))
            prompts = tuple((task, p) for p in prompt_ids[task]) if prompt_ids and task in prompt_ids else None
            result.items[(task, key)] = ItemScores(tuple((task, i) for i in range(len(num))), num, den, prompts)
            result.higher_is_better[(task, key.split(",")[0])] = (higher_is_better or {}).get(key.split(",")[0], True)
    return result


def write_run(
    folder: Path,
    method: str,
    steps: int = 40,
    seed: int = 0,
    tokens: Sequence[Sequence[str]] = (),
    flags: Sequence[Mapping] | None = None,
) -> Path:
    """A SYNTHETIC training run folder: smooth made-up curves and made-up token scores.

    ``sparsepo…`` methods log the mask statistics, ``tidpo…`` the token weights; ``flags`` (when
    not None) are written to ``health.json``. For report rendering only; the name of the folder
    should say it is synthetic.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(f"method: {method}\nnote: synthetic curves for the report test\n")
    lines = []
    for step in range(1, steps + 1):
        progress = 1 - math.exp(-step / (steps / 4))
        margin = 2.0 * progress + rng.normal(0, 0.1)
        row = {
            "step": step,
            "epoch": step / steps,
            "loss": math.log(2) - 0.5 * progress + rng.normal(0, 0.02),
            "rewards/chosen": margin / 2,
            "rewards/rejected": -margin / 2,
            "rewards/margins": margin,
            "rewards/accuracies": min(1.0, 0.5 + 0.45 * progress + rng.normal(0, 0.03)),
            "logps/chosen": -60 + 5 * progress,
            "logps/rejected": -62 - 8 * progress,
            "grad_norm": 3 * math.exp(-step / steps) + rng.uniform(0, 0.3),
            "learning_rate": 5e-7,
        }
        if method.startswith("sparsepo"):
            row["mask/u_zero_fraction"] = 0.2 + 0.3 * progress
            row["mask/u_chosen_mean"] = 0.6 - 0.1 * progress
            row["mask/u_rejected_mean"] = 0.5 - 0.1 * progress
            row["kl/chosen"] = 0.05 * progress
        if method.startswith("tidpo"):
            row["weights/chosen_mean"] = 1.0
            row["weights/rejected_mean"] = 1.0
            row["weights/max"] = 2.0 + progress
        lines.append(json.dumps(row))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if flags is not None:
        (folder / "health.json").write_text(json.dumps({"flags": list(flags), "steps": steps}))
    kinds = ("mask_u", "mask_d") if method.startswith("sparsepo") else ("weight",)
    rows = []
    for example, pair in enumerate(zip(tokens[::2], tokens[1::2], strict=True)):
        for side, toks in zip(("chosen", "rejected"), pair, strict=True):
            scores = {kind: [float(max(0.0, v)) for v in rng.normal(0.5, 0.4, len(toks))] for kind in kinds}
            rows.append(
                json.dumps(
                    {
                        "example": example,
                        "side": side,
                        "method": method,
                        "tokens": list(toks),
                        "scores": scores,
                    }
                )
            )
    if rows:
        (folder / "token_scores.jsonl").write_text("\n".join(rows) + "\n")
    return folder
