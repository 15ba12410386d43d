"""Read evaluation results: our result folders and plain lm-evaluation-harness output folders.

Both hold lm-eval's ``results.json`` schema (metric keys ``"METRIC,FILTER"`` with
``"METRIC_stderr,FILTER"`` beside them) and per-item sample files (read by ``samples``). A per-item
file is used for paired statistics only when its scores reproduce the reported value; otherwise the
reported stderr is used and a note says why, so no number silently changes meaning.

Accepted paths (see docs/file-formats.md):

- ``OUT/`` or ``OUT/results.json``: our folder, samples in ``OUT/samples/TASK.jsonl``;
- ``DIR/MODEL/`` or ``DIR/MODEL/results_TS.json``: lm-eval's, samples in ``samples_TASK_TS.jsonl``;
- ``DIR/``: lm-eval's ``--output_path``, one result per ``MODEL`` folder inside;
- any other folder (a ``harness run`` output or its ``eval/``): every result folder below it.

The one reader of result folders: ``read_results`` (many paths, files of one run merged, for the
leaderboard and the frontier), ``load_single`` (one result, for the regression gate) and
``load_results`` (every result at one path), on which both rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokenpo.leaderboards.discover import not_a_result, result_files
from tokenpo.leaderboards.errors import ResultsError
from tokenpo.leaderboards.files import finite_number, read_json
from tokenpo.leaderboards.health import parse_flags
from tokenpo.leaderboards.samples import ItemScores, read_samples

_LMEVAL_RESULTS = re.compile(r"^results_(?P<ts>.+)\.json$")
# Reproduction tolerance for "Σ per-item scores / n equals the reported value" (float sums only).
_REPRODUCE_TOL = 1e-6


@dataclass(frozen=True)
class MetricValue:
    """One reported number: the value, its standard error (None when not reported) and item count."""

    value: float
    stderr: float | None
    n: int | None


@dataclass
class Result:
    """One evaluated model: reported metrics per ``(task, "METRIC,FILTER")`` and per-item scores."""

    source: str
    model: str
    method: str
    seed: int | None
    metrics: dict[tuple[str, str], MetricValue] = field(default_factory=dict)
    items: dict[tuple[str, str], ItemScores] = field(default_factory=dict)
    higher_is_better: dict[tuple[str, str], bool] = field(default_factory=dict)
    n_shot: dict[str, object] = field(default_factory=dict)
    subtasks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # task → (items evaluated, items in the task): fewer evaluated means a slice (--limit)
    n_samples: dict[str, tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    harness: dict = field(default_factory=dict)

    @property
    def run_key(self) -> tuple[str, str, int | None, int | None]:
        """What makes files one run's: model, method, seed, and the checkpoint's step (None: final)."""
        return (self.model, self.method, self.seed, self.checkpoint_step)

    @property
    def step(self) -> int | None:
        """``harness.step``: the optimiser steps the evaluated weights had trained (the base model 0)."""
        step = self.harness.get("step")
        return step if isinstance(step, int) and not isinstance(step, bool) else None

    @property
    def checkpoint_step(self) -> int | None:
        """The step of a checkpoint evaluated on the way (``harness.final`` false); None for a final model."""
        return self.step if self.harness.get("final") is False else None

    @property
    def trained(self) -> bool:
        """False for the untrained base model (``harness.method_family: base``): no training seed to vary."""
        return self.family != "base"

    @property
    def effective_beta(self) -> float | None:
        """``harness.effective_beta``: β × the mean token multiplier the run trained with (health.json)."""
        return finite_number(self.harness.get("effective_beta"))

    @property
    def family(self) -> str | None:
        """``harness.method_family``: the method without its hyper-parameters (None when not recorded)."""
        family = self.harness.get("method_family")
        return family if isinstance(family, str) and family else None

    @property
    def beta(self) -> float | None:
        """``harness.beta``: the method's β (None for the base model or when not recorded)."""
        return finite_number(self.harness.get("beta"))

    @property
    def training_health(self) -> list[dict] | None:
        """``harness.training_health``: the training run's flags; ``[]`` healthy, None unknown."""
        return parse_flags(self.harness.get("training_health"), f"{self.source}: harness.training_health")

    @property
    def tasks(self) -> list[str]:
        return sorted({task for task, _ in self.metrics})

    @property
    def top_level_tasks(self) -> list[str]:
        """Tasks that are not a subtask of a group (what users report and gate on)."""
        inner = {task for children in self.subtasks.values() for task in children}
        return [task for task in self.tasks if task not in inner]

    def is_higher_better(self, task: str, metric: str) -> bool | None:
        return self.higher_is_better.get((task, metric.split(",")[0]))

    def merge(self, other: Result) -> None:
        """Add another file's tasks for the same run (eval and judge may write separately)."""
        for key, value in other.metrics.items():
            if key in self.metrics:
                raise ResultsError(
                    f"{other.source}: task {key[0]!r} metric {key[1]!r} of run {self.label} is also in {self.source}"
                )
            self.metrics[key] = value
        self.items.update(other.items)
        self.higher_is_better.update(other.higher_is_better)
        self.n_shot.update(other.n_shot)
        self.subtasks.update(other.subtasks)
        self.n_samples.update(other.n_samples)
        self.notes.extend(other.notes)
        for key, value in other.harness.items():  # e.g. metadata an older file of the run lacks
            if self.harness.get(key) is None:
                self.harness[key] = value
        self.source = f"{self.source} + {other.source}"

    @property
    def label(self) -> str:
        seed = "" if self.seed is None else f" seed {self.seed}"
        step = "" if self.checkpoint_step is None else f" step {self.checkpoint_step}"
        return f"{self.model} / {self.method}{seed}{step}"


def parse_result_arg(arg: str) -> tuple[str | None, str]:
    """``PATH`` or ``METHOD=PATH`` (METHOD labels results that carry no "harness" block)."""
    method, sep, path = arg.partition("=")
    if sep and method and "/" not in method and not Path(arg).exists():
        return method, path
    return None, arg


def read_results(results: Iterable[Result | str | Path]) -> list[Result]:
    """``Result`` objects as given, then every path read (``PATH`` or ``METHOD=PATH``), the files of
    one run (same model, method and seed) merged into one result."""
    results = list(results)
    loaded = [r for r in results if isinstance(r, Result)]
    runs: dict[tuple, Result] = {}
    for arg in (r for r in results if not isinstance(r, Result)):
        method, path = parse_result_arg(str(arg))
        for result in load_results(path, method):
            if result.run_key in runs:
                runs[result.run_key].merge(result)
            else:
                runs[result.run_key] = result
    return loaded + list(runs.values())


def load_single(path: str | Path) -> Result:
    """The one result at ``path`` (a ``ResultsError`` when it holds several)."""
    results = load_results(path)
    if len(results) != 1:
        raise ResultsError(f"{path}: holds {len(results)} results ({', '.join(r.model for r in results)}); give one")
    return results[0]


def load_results(path: str | Path, method: str | None = None) -> list[Result]:
    """Every result at ``path`` (a file or folder, see the module docstring)."""
    path = Path(path)
    if path.is_file():
        if other := not_a_result(path):
            raise ResultsError(f"{path}: {other}, not a result")
        return [_load_results_file(path, method)]
    if not path.is_dir():
        raise ResultsError(f"{path}: no such file or folder")
    files = result_files(path)
    if not files:
        what = not_a_result(path) or "a folder with no results.json or lm-eval results_*.json in it or below"
        raise ResultsError(f"{path}: {what}, not a result")
    return [_load_results_file(file, method) for file in files]


def _load_results_file(path: Path, method: str | None) -> Result:
    data = read_json(path)
    for key in ("results",):
        if not isinstance(data.get(key), Mapping):
            raise ResultsError(f"{path}: {key}: missing or not an object (is this lm-eval output?)")
    harness = data.get("harness") or {}
    if not isinstance(harness, Mapping):
        raise ResultsError(f"{path}: harness: expected an object")
    result = Result(
        source=str(path),
        model=_model_name(path, data, harness),
        method=method or str(harness.get("method") or _model_name(path, data, {})),
        seed=_seed(path, harness),
        harness=dict(harness),
    )
    _check_metadata(path, harness)
    older = sorted(path.parent.glob("results_*.json"))[:-1] if _LMEVAL_RESULTS.match(path.name) else []
    if older:
        result.notes.append(f"{path.parent}: read the newest results file; {len(older)} older one(s) ignored")
    _read_metrics(path, data, result)
    for task in _leaf_tasks(result):
        samples = _samples_file(path, task)
        if samples is None:
            continue
        wanted = [key for (t, key) in result.metrics if t == task]
        for key, scores in read_samples(samples, task, wanted, result.notes).items():
            result.items[(task, key)] = scores
    _pool_groups(result)
    _check_reproduction(result)
    return result


def _model_name(path: Path, data: Mapping, harness: Mapping) -> str:
    for name in (harness.get("base_model"), harness.get("model_spec"), data.get("model_name")):
        if isinstance(name, str) and name:
            return name
    folder = path.parent
    return folder.name if _LMEVAL_RESULTS.match(path.name) else folder.name or str(folder)


def _seed(path: Path, harness: Mapping) -> int | None:
    seed = harness.get("seed")
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ResultsError(f"{path}: harness.seed: expected an integer, got {seed!r}")
    return seed


def _check_metadata(path: Path, harness: Mapping) -> None:
    """The optional metadata the report groups and flags by (absent in older and plain lm-eval results)."""
    family = harness.get("method_family")
    if family is not None and not isinstance(family, str):
        raise ResultsError(f"{path}: harness.method_family: expected a string, got {family!r}")
    for key in ("beta", "effective_beta"):
        if harness.get(key) is not None and finite_number(harness[key]) is None:
            raise ResultsError(f"{path}: harness.{key}: expected a number or null, got {harness[key]!r}")
    step, final = harness.get("step"), harness.get("final")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ResultsError(f"{path}: harness.step: expected a non-negative integer, got {step!r}")
    if final is not None and not isinstance(final, bool):
        raise ResultsError(f"{path}: harness.final: expected true or false, got {final!r}")
    if final is False and step is None:
        raise ResultsError(f"{path}: harness.step: a checkpoint's result (final: false) needs its step")
    parse_flags(harness.get("training_health"), f"{path}: harness.training_health")


def _read_metrics(path: Path, data: Mapping, result: Result) -> None:
    n_samples = data.get("n-samples") or {}
    for task, entry in data["results"].items():
        if not isinstance(entry, Mapping):
            raise ResultsError(f"{path}: results.{task}: expected an object")
        n = _task_n(n_samples.get(task), entry)
        for key, raw in entry.items():
            if "," not in key or key.split(",")[0].endswith("_stderr"):
                continue
            value = finite_number(raw)
            if value is None:
                if raw not in (None, "N/A"):
                    raise ResultsError(f"{path}: results.{task}.{key}: expected a number, got {raw!r}")
                continue
            metric, filter_name = key.split(",", 1)
            stderr = finite_number(entry.get(f"{metric}_stderr,{filter_name}"))
            result.metrics[(task, key)] = MetricValue(value=value, stderr=stderr, n=n)
    for task, counts in n_samples.items():
        if isinstance(counts, Mapping) and all(isinstance(counts.get(k), int) for k in ("effective", "original")):
            result.n_samples[task] = (counts["effective"], counts["original"])
    for task, entry in (data.get("higher_is_better") or {}).items():
        for metric, higher in (entry or {}).items():
            if isinstance(higher, bool):
                result.higher_is_better[(task, metric)] = higher
    result.n_shot.update(data.get("n-shot") or {})
    groups = data.get("group_subtasks") or {}
    for group in groups:
        result.subtasks[group] = tuple(_leaves(group, groups, set()))
    # Groups take the direction of their subtasks' metrics.
    for group, leaves in result.subtasks.items():
        for (task, metric), higher in list(result.higher_is_better.items()):
            if task in leaves:
                result.higher_is_better.setdefault((group, metric), higher)


def _task_n(n_samples: object, entry: Mapping) -> int | None:
    if isinstance(n_samples, Mapping) and isinstance(n_samples.get("effective"), int):
        return n_samples["effective"]
    length = entry.get("sample_len")
    return length if isinstance(length, int) and not isinstance(length, bool) else None


def _leaves(group: str, groups: Mapping, seen: set[str]) -> Iterator[str]:
    for child in groups.get(group) or ():
        if child in seen:
            continue
        seen.add(child)
        if groups.get(child):
            yield from _leaves(child, groups, seen)
        else:
            yield child


def _leaf_tasks(result: Result) -> list[str]:
    return [task for task in result.tasks if not result.subtasks.get(task)]


def _samples_file(results_path: Path, task: str) -> Path | None:
    ours = results_path.parent / "samples" / f"{task}.jsonl"
    if ours.is_file():
        return ours
    match = _LMEVAL_RESULTS.match(results_path.name)
    if match:
        theirs = results_path.parent / f"samples_{task}_{match['ts']}.jsonl"
        if theirs.is_file():
            return theirs
    return None


def _pool_groups(result: Result) -> None:
    """A group's items are its leaf tasks' items pooled (lm-eval's size-weighted group mean)."""
    for group, leaves in result.subtasks.items():
        for task, key in list(result.metrics):
            if task != group:
                continue
            parts = [result.items.get((leaf, key)) for leaf in leaves]
            if parts and all(part is not None for part in parts):
                grouped = any(part.prompts is not None for part in parts)
                result.items[(group, key)] = ItemScores(
                    keys=tuple(k for part in parts for k in part.keys),
                    num=np.concatenate([part.num for part in parts]),
                    den=np.concatenate([part.den for part in parts]),
                    prompts=tuple(p for part in parts for p in (part.prompts or part.keys)) if grouped else None,
                )


def _check_reproduction(result: Result) -> None:
    for (task, key), scores in list(result.items.items()):
        reported = result.metrics[(task, key)].value
        if scores.den.sum() <= 0 or abs(scores.value - reported) > _REPRODUCE_TOL * max(1.0, abs(reported)):
            del result.items[(task, key)]
            result.notes.append(
                f"{result.source}: {task} {key}: per-item scores give {scores.value:.6g}, "
                f"reported {reported:.6g}; using the reported stderr"
            )
