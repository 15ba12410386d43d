"""Read training run folders: ``config.yaml`` (the method, and whether SparsePO's two masks are one),
``metrics.jsonl`` (curves, mask and weight statistics), ``health.json`` (training health: flags, every
check, effective β, anchor coverage) and ``token_scores.jsonl`` (token pictures)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from tokenpo.leaderboards import health
from tokenpo.leaderboards.discover import superseded
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.files import finite_number, json_lines, read_json

SIDES = ("chosen", "rejected")
# What the mask/weights table summarises (docs/file-formats.md): SparsePO's masks (u: reward, d: KL,
# only with independent heads), TI-DPO's token weights, and whether the run learned at all.
MASK_KEYS = tuple(
    f"mask/{head}_{stat}" for head in ("u", "d") for stat in ("zero_fraction", "chosen_mean", "rejected_mean")
)
WEIGHT_KEYS = ("weights/chosen_mean", "weights/rejected_mean", "weights/max")
OUTCOME_KEYS = ("rewards/margins", "rewards/accuracies")
SUMMARY_WINDOW = 5  # "last": the mean over this many last logged steps
# The held-out pairs' metrics in a step's row (training.eval_steps): TRL's names, eval_loss, eval_rewards/…
HELD_OUT_PREFIX = "eval_"


@dataclass(frozen=True)
class TokenScores:
    """One completion of a training pair, each token with its mask or weight (per score kind)."""

    example: int
    side: str
    method: str
    tokens: tuple[str, ...]
    scores: dict[str, tuple[float, ...]]


@dataclass
class TrainingRun:
    path: Path
    name: str
    method: str | None
    metrics: pd.DataFrame  # one row per optimiser step; columns as logged (TRL's names)
    token_scores: list[TokenScores] = field(default_factory=list)
    health: list[dict] | None = None  # health.json's flags: [] healthy, None unknown (no health.json)
    health_steps: int | None = None  # health.json's step count
    checks: list[dict] = field(default_factory=list)  # health.json's checks: every one, with its outcome
    effective_beta: float | None = None  # β × the mean token multiplier (health.json)
    anchor_coverage: float | None = None  # TI-DPO: the share of pairs that ever had an anchor (health.json)
    # SparsePO: one mask serves the reward and the KL term (m_u = m_d); None: not SparsePO, or not recorded
    common_mask: bool | None = None

    @property
    def health_status(self) -> str:
        return health.status([self.health])


def load_runs(paths: Sequence[str | Path]) -> list[TrainingRun]:
    """Training run folders; a folder of them (a ``harness run`` output's ``train/``, or the output itself)
    gives every run inside, as the pipeline's report draws them."""
    return [load_run(run) for path in paths for run in _run_folders(Path(path))]


def _run_folders(path: Path) -> list[Path]:
    if not path.is_dir() or _is_run(path):
        return [path]  # load_run says what is wrong with a path that is not a run
    inside = path / "train" if (path / "train").is_dir() else path
    runs = sorted(child for child in inside.iterdir() if _is_run(child) and not superseded(child))
    return runs or [path]


def _is_run(path: Path) -> bool:
    return (path / "metrics.jsonl").is_file() or (path / "token_scores.jsonl").is_file()


def load_run(path: str | Path) -> TrainingRun:
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: not a training run folder")
    metrics_file, scores_file = path / "metrics.jsonl", path / "token_scores.jsonl"
    if not metrics_file.is_file() and not scores_file.is_file():
        raise ResultsError(f"{path}: neither metrics.jsonl nor token_scores.jsonl inside")
    metrics = pd.DataFrame.from_records(list(_metric_rows(metrics_file))) if metrics_file.is_file() else pd.DataFrame()
    scores = list(_token_scores(scores_file)) if scores_file.is_file() else []
    method = _method_block(path / "config.yaml")
    run = TrainingRun(
        path=path,
        name=path.name,
        method=_method_name(method),
        metrics=metrics,
        token_scores=scores,
        common_mask=_common_mask(method),
    )
    _read_health(path / "health.json", run)
    return run


_OUTCOMES = ("pass", "flag", "n/a")


def _read_health(path: Path, run: TrainingRun) -> None:
    """``health.json`` into ``run``: ``{"flags", "checks", "effective_beta", "anchor_coverage", "steps"}``
    (an older file has flags and steps only); no file: health unknown."""
    if not path.is_file():
        return
    data = read_json(path)
    if "flags" not in data:
        raise ResultsError(f"{path}: flags: missing (an empty list means the run is healthy)")
    steps = data.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
        raise ResultsError(f"{path}: steps: expected an integer, got {steps!r}")
    for key in ("effective_beta", "anchor_coverage"):
        if data.get(key) is not None and finite_number(data[key]) is None:
            raise ResultsError(f"{path}: {key}: expected a number or null, got {data[key]!r}")
    checks = data.get("checks", [])
    if not isinstance(checks, list):
        raise ResultsError(f"{path}: checks: expected a list")
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("name"), str):
            raise ResultsError(f"{path}: checks[{i}].name: missing or not a string")
        if check.get("outcome") not in _OUTCOMES:
            raise ResultsError(
                f"{path}: checks[{i}].outcome: expected one of {', '.join(_OUTCOMES)}, got {check.get('outcome')!r}"
            )
    run.health = health.parse_flags(data["flags"], f"{path}: flags")
    run.health_steps, run.checks = steps, checks
    run.effective_beta, run.anchor_coverage = (
        finite_number(data.get("effective_beta")),
        finite_number(data.get("anchor_coverage")),
    )


def mask_weight_records(runs: Sequence[TrainingRun], window: int = SUMMARY_WINDOW) -> list[dict]:
    """Per run, its SparsePO mask sparsity / TI-DPO token weights, final margins and health, as JSON records.

    Every summarised metric (``MASK_KEYS``, ``WEIGHT_KEYS``, other ``mask/`` and ``weights/`` keys,
    ``OUTCOME_KEYS``) that the run logged becomes ``{"first": value at its first logged step (step 1),
    "last": mean over its last ``window`` logged steps, "final": value at its last logged step}``.
    ``kind`` is ``sparsepo`` (masks logged), ``tidpo`` (weights logged) or None; a step logged twice
    (a resumed run) counts once, with its latest values.
    """
    if window < 1:
        raise ValueError(f"window: {window} must be at least 1")
    records = []
    for run in runs:
        frame = _by_step(run.metrics)
        logged = list(frame.columns)
        keys = [k for k in MASK_KEYS if k in logged]
        keys += sorted(k for k in logged if k.startswith("mask/") and k not in keys)
        keys += [k for k in WEIGHT_KEYS if k in logged]
        keys += sorted(k for k in logged if k.startswith("weights/") and k not in keys)
        keys += [k for k in OUTCOME_KEYS if k in logged]
        metrics = {}
        for key in keys:
            values = frame[key].dropna()
            if values.empty:
                continue
            metrics[key] = {
                "first": float(values.iloc[0]),
                "last": float(values.iloc[-window:].mean()),
                "final": float(values.iloc[-1]),
            }
        kind = (
            "sparsepo"
            if any(k.startswith("mask/") for k in metrics)
            else "tidpo"
            if any(k.startswith("weights/") for k in metrics)
            else None
        )
        records.append(
            {
                "run": run.name,
                "path": str(run.path),
                "method": run.method,
                "kind": kind,
                "first_step": int(frame.index[0]) if len(frame) else None,
                "steps": int(frame.index[-1]) if len(frame) else None,
                "window": min(window, len(frame)),
                "metrics": metrics,
                "health": run.health_status,
                "health_flags": [health.flag_record(flag) for flag in run.health or ()],
                "health_checks": [
                    {key: check.get(key) for key in ("name", "metric", "value", "threshold", "outcome")}
                    for check in run.checks
                ],
                "effective_beta": run.effective_beta,
                "anchor_coverage": run.anchor_coverage,
            }
        )
    return records


def _by_step(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per step, sorted, indexed by step; a step's latest value of each column wins."""
    if metrics.empty or "step" not in metrics:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="step"))
    return metrics.groupby("step", sort=True).last()


def _method_block(config: Path) -> dict | str | None:
    """``config.yaml``'s ``method``: the resolved settings (a mapping), or a bare name; None without one."""
    if not config.is_file():
        return None
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ResultsError(f"{config}: cannot read: {error}") from error
    method = data.get("method") if isinstance(data, dict) else None
    return method if isinstance(method, (dict, str)) else None


def _method_name(method: dict | str | None) -> str | None:
    name = method.get("name") if isinstance(method, dict) else method
    return name if isinstance(name, str) else None


def _common_mask(method: dict | str | None) -> bool | None:
    """Whether SparsePO's reward mask m_u and KL mask m_d are one mask, as the trainer decides it
    (``SparsePOConfig.common_mask``): activation masks, or learned masks of a common head (the default
    of both settings is the resolved config's; absent, the trainer's defaults: learned, common).
    None for other methods, or a config that names the method only."""
    if not isinstance(method, dict) or method.get("name") != "sparsepo":
        return None
    return method.get("mask", "learned") == "activation" or method.get("heads", "common") == "common"


def _metric_rows(path: Path) -> Iterator[dict]:
    for number, row in json_lines(path):
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            raise ResultsError(f"{path}:{number}: step: missing or not an integer")
        # Non-numeric values (a phase name, NaN from a diverged step) are not plotted.
        yield {key: value for key, value in row.items() if finite_number(value) is not None}


def _token_scores(path: Path) -> Iterator[TokenScores]:
    for number, row in json_lines(path):
        where = f"{path}:{number}"
        example, side, method, tokens, scores = (row.get(k) for k in ("example", "side", "method", "tokens", "scores"))
        if isinstance(example, bool) or not isinstance(example, int):
            raise ResultsError(f"{where}: example: missing or not an integer")
        if side not in SIDES:
            raise ResultsError(f"{where}: side: expected 'chosen' or 'rejected', got {side!r}")
        if not isinstance(method, str):
            raise ResultsError(f"{where}: method: missing or not a string")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ResultsError(f"{where}: tokens: expected a list of strings")
        if not isinstance(scores, dict) or not scores:
            raise ResultsError(f"{where}: scores: expected an object of score lists")
        for kind, values in scores.items():
            if not isinstance(values, list) or not all(finite_number(v) is not None for v in values):
                raise ResultsError(f"{where}: scores.{kind}: expected a list of numbers")
            if len(values) != len(tokens):
                raise ResultsError(f"{where}: scores.{kind}: {len(values)} values for {len(tokens)} tokens")
        yield TokenScores(example, side, method, tuple(tokens), {k: tuple(map(float, v)) for k, v in scores.items()})
