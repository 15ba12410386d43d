"""The task files one evaluation pass loads: written anew under its own folder, and their digest.

Every pass writes them afresh (no earlier run's file may load): the official definitions with the
data source redirected and the code scorer sandboxed under the evaluation's limits
(:mod:`tokenpo.evals.tasks.configs`), plus a YAML per task the suite gives settings of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tokenpo.core.fingerprint import fingerprint
from tokenpo.evals.errors import EvalError
from tokenpo.evals.evaluation import Evaluation
from tokenpo.evals.suites import task_name
from tokenpo.evals.tasks.configs import TaskConfigs, verify_checksums, write_task_configs

FOLDERS = ("tasks", "overrides")


def write_task_files(root: Path, evaluation: Evaluation) -> TaskConfigs:
    """Write the task files of ``evaluation`` under ``root`` (offline: refuse a task its data folder lacks,
    or data changed since it was prepared)."""
    for stale in FOLDERS:
        shutil.rmtree(root / stale, ignore_errors=True)
    configs = write_task_configs(root / "tasks", evaluation.data_dir, evaluation.sandbox)
    suite = evaluation.suite
    configs.write_overrides(root / "overrides", [spec for spec in suite.tasks if isinstance(spec, dict)])
    if configs.offline:
        missing = [name for name in task_names(evaluation) if name not in configs.tasks]
        if missing:
            raise EvalError(
                str(evaluation.data_dir),
                missing[0],
                "task not available offline (its benchmark is not prepared "
                f"there, or it is not mirrored); available: {', '.join(sorted(configs.tasks))[:400]}",
            )
        verify_checksums(evaluation.data_dir, configs.checksums)
    return configs


def task_names(evaluation: Evaluation) -> list[str]:
    """The lm-eval task (or group) names the evaluation runs."""
    return [task_name(spec) for spec in evaluation.suite.tasks]


def task_files_digest(root: Path) -> str:
    """sha256 over the task YAMLs written under ``root`` (names and contents; ``root`` itself, which
    differs between a run and its shards, as ``<root>``)."""
    files = sorted(p for folder in FOLDERS for p in (root / folder).glob("**/*.yaml"))
    contents = {str(p.relative_to(root)): p.read_text(encoding="utf-8").replace(str(root), "<root>") for p in files}
    return fingerprint(contents)
