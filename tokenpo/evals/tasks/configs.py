"""Write lm-eval task YAMLs that reuse the official definitions, redirecting only what must change.

For every official task file of the benchmarks we mirror, a YAML of the same name is written that
``include``s the official file by absolute path and overrides only the data source
(``dataset_path: json`` and ``data_files`` pointing at a prepared data folder): prompts, few-shot
settings, filters, metrics and versions stay those of the installed lm-eval. Group files are
included unchanged, so ``mmlu`` still aggregates its 57 subjects.

Code tasks (HumanEval) are the one exception: their official ``utils.py`` loads 🤗 evaluate's
``code_eval`` on import, which needs the hub and runs code unsandboxed. Their config is written
out in full from the official one with the scorer (and the filters living in that module)
replaced by :mod:`tokenpo.evals.tasks.code`, and the sandbox limits the scorer runs programs under
written into its ``metric_list`` entry (lm-eval passes that entry's extra keys to the metric). Online,
only these code tasks are written; everything else is lm-eval's own task.

The folder works with plain lm-eval too: ``lm_eval --include_path DIR --tasks gsm8k ...``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tokenpo.core.catalog import Mirror
from tokenpo.core.files import sha256_file, write_atomic
from tokenpo.evals.data.mirror import MIRRORS, mirror_folder
from tokenpo.evals.data.prepare import load_manifest
from tokenpo.evals.errors import EvalError
from tokenpo.evals.tasks.code import LM_EVAL_LIMITS
from tokenpo.sandbox import SandboxLimits

# The official code-task functions (``humaneval/utils.NAME``) and ours that replace them.
CODE_FUNCTIONS = {
    "pass_at_k": "tokenpo.evals.tasks.code.pass_at_k_metric",
    "build_predictions": "tokenpo.evals.tasks.code.build_predictions",
    "build_predictions_instruct": "tokenpo.evals.tasks.code.build_predictions_instruct",
}
# Splits the official configs use that a prepared folder lacks, and what stands in for them.
MISSING_SPLITS = {"cais/mmlu": {"fewshot_split": "test"}}


def official_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


class FunctionRef(str):
    """A value written as ``!function module.name`` (lm-eval imports it when it loads the YAML)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(FunctionRef, lambda dumper, value: dumper.represent_scalar("!function", str(value)))


@dataclass
class TaskConfigs:
    """A folder of task YAMLs and what is known about each task's data."""

    folder: Path
    offline: bool
    tasks: dict[str, str] = field(default_factory=dict)  # task or group name -> benchmark
    paths: dict[str, Path] = field(default_factory=dict)  # task or group name -> the YAML that defines it
    extra_folders: list[Path] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # benchmark -> how offline data differs
    checksums: dict[str, str] = field(default_factory=dict)  # data file -> sha256

    def task_manager(self):
        """lm-eval's TaskManager over these configs (offline: only these; online: lm-eval's too).

        IFEval's module downloads NLTK's Punkt model when it is imported and finds none: the
        model is installed from a local source first, so no download is ever attempted.
        """
        from lm_eval.tasks import TaskManager

        from tokenpo.evals.punkt import install_punkt_tab

        install_punkt_tab(self.folder / "nltk_data")

        folders = [str(self.folder), *map(str, self.extra_folders)]
        return TaskManager(include_path=folders, include_defaults=not self.offline)

    def write_overrides(self, folder: Path, specs: list[dict[str, Any]]) -> None:
        """Tasks given as ``{task: NAME, key: value}``: a YAML including NAME's definition with those keys.

        lm-eval builds a mapping given to ``TaskManager.load`` as a new task, not as overrides of
        a registered one; a YAML of the same name in a later include folder overrides it instead.
        """
        for spec in specs:
            name = spec["task"]
            source = self.paths.get(name) or self._registered_path(name)
            body = {"include": str(source), **spec}
            write_atomic(Path(folder) / f"{name}.yaml", yaml.dump(body, Dumper=_Dumper, sort_keys=False))
        self.extra_folders.append(Path(folder))

    def _registered_path(self, name: str) -> Path:
        entry = self.task_manager().task_index.get(name)
        if entry is None or entry.yaml_path is None:
            raise EvalError("tasks", name, "unknown task (overrides need a task defined by a YAML file)")
        return Path(entry.yaml_path)


def _load_official(path: Path) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False, recursive=True)


def _swap_code_functions(value: Any, official_dir: Path) -> Any:
    """Replace the official code functions (unresolved: ``/…/utils.NAME``) by ours; refuse unknown ones."""
    if isinstance(value, dict):
        return {k: _swap_code_functions(v, official_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_code_functions(v, official_dir) for v in value]
    if isinstance(value, str) and value.startswith(str(official_dir)):
        match = re.fullmatch(r".*/utils\.(\w+)", value)
        if not match or match.group(1) not in CODE_FUNCTIONS:
            raise EvalError(value, "function", "an official code-task function we have no sandboxed replacement for")
        return FunctionRef(CODE_FUNCTIONS[match.group(1)])
    return value


def _with_sandbox_limits(config: dict[str, Any], limits: SandboxLimits) -> dict[str, Any]:
    """``config`` with ``limits`` in the metric entries of our sandboxed scorer (its ``sandbox_limits`` argument)."""
    scorer = CODE_FUNCTIONS["pass_at_k"]
    metrics = [
        {**entry, "sandbox_limits": asdict(limits)} if entry.get("metric") == scorer else entry
        for entry in config.get("metric_list") or []
    ]
    return {**config, "metric_list": metrics} if "metric_list" in config else config


def _data_overrides(mirror: Mirror, config: dict[str, Any], data_dir: Path) -> dict[str, Any] | None:
    folder = mirror_folder(data_dir, mirror.hub_id, config.get("dataset_name"))
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        return None
    overrides: dict[str, Any] = {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {f.stem: str(f) for f in files}},
    }
    for key, stand_in in MISSING_SPLITS.get(mirror.hub_id, {}).items():
        if config.get(key) and not (folder / f"{config[key]}.jsonl").is_file():
            overrides[key] = stand_in
    return overrides


def write_task_configs(
    folder: Path, data_dir: Path | None = None, sandbox_limits: SandboxLimits = LM_EVAL_LIMITS
) -> TaskConfigs:
    """Write the task YAMLs into ``folder``: offline from ``data_dir`` (prepared), else online (code tasks only).

    sandbox_limits: what each program of a code task runs under (lm-eval's 3 s timeout by default).
    """
    folder = Path(folder).resolve()
    official_dir = official_tasks_dir()
    manifest = load_manifest(data_dir) if data_dir is not None else None
    if data_dir is not None and manifest is None:
        raise EvalError(
            str(data_dir), "--data-dir", "not a prepared data folder (run `harness data prepare --from DIR`)"
        )
    result = TaskConfigs(folder, offline=data_dir is not None)
    for benchmark, declared in MIRRORS.items():
        mirror = declared.data
        if not declared.task_files or (result.offline and benchmark not in manifest["benchmarks"]):
            continue
        for path in sorted(p for pattern in declared.task_files for p in official_dir.glob(pattern)):
            config = _load_official(path)
            name = config.get("group") or config["task"]
            code_task = "unsafe_code" in config
            if not code_task and not result.offline:
                result.paths[name] = path
            if code_task:
                body = _with_sandbox_limits(_swap_code_functions(config, official_dir), sandbox_limits)
                body.pop("tag", None)  # keep our copy out of the official tags (e.g. none today)
            else:
                if result.offline is False:
                    continue
                body = {"include": str(path)}
            if result.offline and "group" not in config:
                overrides = _data_overrides(mirror, config, Path(data_dir))
                if overrides is None:
                    continue
                body.update(overrides)
            target = folder / path.relative_to(official_dir)
            write_atomic(target, yaml.dump(body, Dumper=_Dumper, sort_keys=False, allow_unicode=True))
            result.tasks[name] = benchmark
            result.paths[name] = target
        if result.offline:
            entry = manifest["benchmarks"][benchmark]
            if entry.get("note"):
                result.notes[benchmark] = entry["note"]
            result.checksums.update({f: info["sha256"] for f, info in entry["files"].items()})
    return result


def verify_checksums(data_dir: Path, checksums: dict[str, str]) -> None:
    """Stop if a prepared file changed since ``harness data prepare`` wrote it."""
    for name, expected in checksums.items():
        actual = sha256_file(Path(data_dir) / name)
        if actual != expected:
            raise EvalError(str(Path(data_dir) / name), "sha256", "changed since it was prepared; prepare again")
