"""What a run folder says about the model it trained: base model, method, settings, data, outcome."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tokenpo.cards.errors import CardError
from tokenpo.core.builtin_models import BUILTIN_MODELS
from tokenpo.core.run_layout import MIXTURE_RECORD
from tokenpo.core.weights import WeightsOrigin, WeightsOriginError

# A hub id: "org/name" (not a path that exists here).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class TrainedModel:
    run_dir: Path
    name: str
    base_spec: str  # as the configuration gave it: a built-in name, a folder or a hub id
    base_id: str | None  # the base model's hub id, when it has one
    base_license: str | None
    config: dict[str, Any]  # the resolved configuration (config.yaml)
    steps: int | None  # None: the run has not finished
    data_path: str | None
    data_id: str | None  # the training data's hub id, when it is a hub dataset
    pairs: int | None  # preference pairs in a local data file
    # Where the base model's weights came from (config.yaml's base_weights); None: as their owner saved them
    base_weights: WeightsOrigin | None = None

    @property
    def mixture(self) -> list[dict[str, Any]] | None:
        """The data mixture the run trained on (``data_mixture`` in config.yaml): per source its ``label``,
        ``weight``, ``available`` and ``drawn`` pairs; None for one source."""
        return self.config.get(MIXTURE_RECORD)

    @property
    def method(self) -> dict[str, Any]:
        return self.config["method"]

    @property
    def method_name(self) -> str:
        return str(self.method["name"])

    @property
    def training(self) -> dict[str, Any]:
        return self.config.get("training") or {}

    @property
    def lora(self) -> bool:
        return self.training.get("lora") is not None

    @property
    def final_dir(self) -> Path:
        return self.run_dir / "final"


def read_trained(run_dir: str | Path, base_weights: WeightsOrigin | None = None) -> TrainedModel:
    """The trained model of ``run_dir`` (a ``harness train`` or pipeline run folder); a
    :class:`CardError` naming the file and field when the folder is not one. ``base_weights`` is the
    base weights' origin for a run whose config.yaml predates recording it (what it records wins)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise CardError(f"{run_dir}: no config.yaml: not a training run folder")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CardError(f"{config_path}: not YAML ({error.__class__.__name__})") from error
    if not isinstance(config, dict) or not isinstance(config.get("method"), dict) or "name" not in config["method"]:
        raise CardError(f"{config_path}: method.name: missing (not a run's configuration)")
    base = str(config.get("model") or "")
    if not base:
        raise CardError(f"{config_path}: model: missing")
    done = run_dir / "DONE"
    steps = json.loads(done.read_text())["steps"] if done.is_file() else None
    data_path = _data_path(config.get("data"))
    data_id = data_path if data_path and _is_hub_id(data_path) else None
    return TrainedModel(
        run_dir=run_dir,
        name=str(config.get("name") or run_dir.name),
        base_spec=base,
        base_id=base_hub_id(base),
        base_license=base_license(base),
        config=config,
        steps=steps,
        data_path=data_path,
        data_id=data_id,
        pairs=_count_lines(Path(data_path)) if data_path and not data_id else None,
        base_weights=_recorded_origin(config, config_path) or base_weights,
    )


def _recorded_origin(config: dict[str, Any], config_path: Path) -> WeightsOrigin | None:
    if config.get("base_weights") is None:
        return None
    try:
        return WeightsOrigin.from_record(config["base_weights"])
    except WeightsOriginError as error:
        raise CardError(f"{config_path}: base_weights.{error}") from error


def base_hub_id(spec: str) -> str | None:
    """The hub id of a base model given as a built-in name, a hub id or a folder (None when unknown)."""
    if spec in BUILTIN_MODELS:
        return BUILTIN_MODELS[spec].hub_id
    return spec if _is_hub_id(spec) else None


def base_license(spec: str) -> str | None:
    """The base model's license as its own card declares it: a folder's README.md, or the built-in
    registry (no network: a card written offline never waits on the hub)."""
    if spec in BUILTIN_MODELS:
        return BUILTIN_MODELS[spec].license
    readme = Path(spec) / "README.md"
    if readme.is_file():
        from huggingface_hub import ModelCard

        license_id = ModelCard(readme.read_text(encoding="utf-8"), ignore_metadata_errors=True).data.license
        return str(license_id) if license_id else None
    return None


def _data_path(data: object) -> str | None:
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        return data["path"]
    return None


def _is_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and not Path(spec).exists()


def _count_lines(path: Path) -> int | None:
    if path.suffix != ".jsonl" or not path.is_file():
        return None
    with path.open(encoding="utf-8") as lines:
        return sum(1 for line in lines if line.strip())
