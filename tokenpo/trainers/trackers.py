"""Experiment trackers (TensorBoard, Weights & Biases, trackio, MLflow) for a run's metrics.

accelerate drives them (``Accelerator(log_with=...)``, ``log``, ``end_training``), with its own tracker
classes. This module decides the two things accelerate leaves to its caller:

- a tracker whose package is missing is refused before any work (:func:`check_trackers`): accelerate
  would drop it with a debug message, and the run would train for hours logging nowhere;
- where each keeps its local files (:func:`build_trackers`), so an offline run's records sit in the
  folder they describe, ``PROJECT/trackers/`` (``RUN/trackers/`` for a training run), not in whatever
  directory the command ran from:

  ==============  ==========================================================================
  tensorboard     event files in ``trackers/NAME/`` (``trackers/GROUP/NAME/`` with a group)
  mlflow          a SQLite store ``trackers/mlflow.db``, artifacts in ``trackers/mlflow-artifacts/``,
                  unless ``MLFLOW_TRACKING_URI`` names another store or a server
  wandb           its ``wandb/`` folder in ``trackers/`` unless ``WANDB_DIR`` is set; ``WANDB_MODE=offline``
                  keeps the run there for ``wandb sync``
  trackio         its own local store (``TRACKIO_DIR``, default ``$HF_HOME/trackio``), which ``trackio show``
                  reads: trackio reads that place once, at import, and has no per-run setting
  ==============  ==========================================================================

The trackers are handed to accelerate built (accelerate accepts tracker objects in ``log_with``) rather
than by name with ``init_kwargs``, so the folder choices live here and the training loop only calls
``init_trackers``/``log``/``end_training``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.tracking import (
    GeneralTracker,
    MLflowTracker,
    TensorBoardTracker,
    TrackioTracker,
    WandBTracker,
    on_main_process,
)

from tokenpo.trainers.errors import TrainingError

__all__ = ["TRACKERS", "build_trackers", "check_trackers", "log_scalars", "trackers_dir"]

# The trackers ``training.report_to`` takes; each is also the module accelerate imports to drive it and
# the name of the package's extra (pip install 'tokenpo-harness[NAME]').
TRACKERS = ("tensorboard", "wandb", "trackio", "mlflow")
# What MLflow's SQLite store (where runs go unless MLFLOW_TRACKING_URI says otherwise) needs besides
# mlflow-skinny, which leaves them out; the extra installs them.
_MLFLOW_LOCAL_STORE = ("sqlalchemy", "alembic")
# The SQLite stores pointed at here. mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI (for its
# subprocesses), so a URI found there is the user's only if it is not one of these: the next run in the
# same process (a pipeline) gets its own store, not the previous run's.
_LOCAL_MLFLOW_URIS: set[str] = set()


def check_trackers(names: Iterable[str], key: str = "training.report_to") -> None:
    """Raise a one-line :class:`TrainingError` naming ``key``, the tracker and the install command when a
    tracker's package is missing (or is not one of :data:`TRACKERS`). Called before a run does any work:
    accelerate itself skips a missing tracker silently."""
    for name in names:
        if name not in TRACKERS:
            raise _unknown(name, key)
        needed = (name, *_MLFLOW_LOCAL_STORE) if name == "mlflow" and _mlflow_user_uri() is None else (name,)
        for module in needed:
            if not _installed(module):
                why = "" if module == name else " for its local store"
                raise TrainingError(
                    f"{key}: {name} needs the {module} package{why}: pip install 'tokenpo-harness[{name}]'"
                )


def trackers_dir(project_dir: str | os.PathLike[str]) -> Path:
    """Where trackers keep their local files: ``PROJECT/trackers`` (a training run: ``RUN/trackers``)."""
    return Path(project_dir) / "trackers"


def build_trackers(
    names: Sequence[str], project_dir: str | os.PathLike[str], run_name: str, group: str | None = None
) -> list[GeneralTracker]:
    """accelerate's trackers for ``names`` (not started), keeping their files under :func:`trackers_dir`.

    ``run_name`` names the run; without ``group`` each tracker files it as accelerate's
    ``init_trackers(run_name)`` would (wandb and trackio project, MLflow experiment, TensorBoard folder).
    With ``group`` the run is filed under it: the wandb and trackio project and group, the MLflow
    experiment (and a ``group`` tag), the TensorBoard folder ``trackers/GROUP/RUN_NAME``.
    """
    folder = trackers_dir(project_dir)
    names = list(dict.fromkeys(names))
    mlflow_store = _mlflow_local_uri(folder) if _mlflow_user_uri() is None else None
    if "wandb" in names or ("mlflow" in names and mlflow_store):
        folder.mkdir(parents=True, exist_ok=True)  # wandb and SQLite do not create the folder they are given
    grouped = {} if group is None else {"group": group}
    project = group or run_name
    trackers: list[GeneralTracker] = []
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run_name if group is None else f"{group}/{run_name}", folder))
        elif name == "wandb":
            where = {} if os.environ.get("WANDB_DIR") else {"dir": str(folder)}
            trackers.append(WandBTracker(project, name=run_name, **grouped, **where))
        elif name == "trackio":
            trackers.append(TrackioTracker(project, name=run_name, **grouped))
        elif name == "mlflow":
            trackers.append(
                _LocalStoreMLflowTracker(
                    mlflow_store,
                    experiment_name=project,
                    run_name=run_name,
                    tags=grouped or None,
                    logging_dir=str(folder / "mlflow-artifacts") if mlflow_store else None,
                )
            )
        else:
            raise _unknown(name, "report_to")
    return trackers


def log_scalars(
    report_to: Sequence[str],
    project_dir: str | os.PathLike[str],
    run_name: str,
    group: str | None,
    scalars: Mapping[str, float],
    step: int | None = None,
) -> None:
    """Log ``scalars`` as one run ``run_name`` filed under ``group`` in each tracker of ``report_to``, then
    close it: for results known only after training (a model's evaluation), which have no training loop to
    ride on. Files go where :func:`build_trackers` says, under ``project_dir``; in a launch of several
    processes only the main one logs. Raises :class:`TrainingError` first when a tracker's package is missing."""
    if not report_to:
        return
    check_trackers(report_to, key="report_to")
    # accelerate's trackers log through its logger, which needs the process state; one process logs
    if not PartialState().is_main_process:
        return
    values = {key: float(value) for key, value in scalars.items()}
    for tracker in build_trackers(report_to, project_dir, run_name, group):
        tracker.start()
        try:
            tracker.log(values, step=step)
        finally:
            tracker.finish()


class _LocalStoreMLflowTracker(MLflowTracker):
    """accelerate's MLflowTracker, first pointing mlflow at ``store_uri`` when there is one: accelerate's
    tracker takes no tracking URI and mlflow keeps it process-wide, so it is set when the run starts."""

    def __init__(self, store_uri: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store_uri = store_uri

    @on_main_process
    def start(self) -> None:
        if self.store_uri is not None:
            import mlflow

            _LOCAL_MLFLOW_URIS.add(self.store_uri)
            mlflow.set_tracking_uri(self.store_uri)
        super().start()


def _mlflow_user_uri() -> str | None:
    """The tracking URI the user chose (MLFLOW_TRACKING_URI, or mlflow.set_tracking_uri which sets it),
    None when runs go to the store under their own folder."""
    chosen = os.environ.get("MLFLOW_TRACKING_URI")
    return chosen if chosen and chosen not in _LOCAL_MLFLOW_URIS else None


def _mlflow_local_uri(folder: Path) -> str:
    """The SQLite store in ``folder``: MLflow 3 refuses its old file store unless told to, and SQLite is
    the local store it recommends instead."""
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def _unknown(name: str, key: str) -> TrainingError:
    return TrainingError(f"{key}: unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
