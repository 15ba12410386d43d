"""Publishing a trained model to the hub: what goes (the upload plan) and one commit that sends it.

The plan of a full model is ``final/``: weights, config, tokenizer, card and token picture. A LoRA run
can publish its adapter instead (``final/adapter/``, with the adapter's own card and its
``base_model_name_or_path`` set to the base model's hub id) or the merged model. The upload is one
``create_commit``: large files go first through the hub's LFS batch API, which skips those already
uploaded, so a push that was interrupted continues where it stopped when run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tokenpo.cards.errors import CardError
from tokenpo.cards.render import CARD, PICTURE, SOURCES, build_card
from tokenpo.core.run_layout import ADAPTER

Variant = Literal["model", "adapter"]
# What a model folder holds that is not for the hub: our own bookkeeping and temporary files.
_NOT_UPLOADED = {".DS_Store"}


@dataclass(frozen=True)
class Upload:
    """One file of the commit: read from ``source``, or ``content`` written by us (a card, a config)."""

    path_in_repo: str
    source: Path | None = None
    content: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else self.source.stat().st_size  # type: ignore[union-attr]


def upload_plan(run_dir: str | Path, variant: Variant = "model", repo_id: str | None = None) -> list[Upload]:
    """The files ``harness push`` sends for the run ``run_dir``: the merged/full model, or a LoRA run's
    adapter, with the card rebuilt for ``repo_id`` from the evaluations it was written from. A
    :class:`CardError` when the run has not finished or has no adapter."""
    from tokenpo.cards import rebuild_parts

    parts, _ = rebuild_parts(run_dir, repo_id=repo_id, adapter=variant == "adapter")
    model = parts.model
    if model.steps is None or not model.final_dir.is_dir():
        raise CardError(f"{model.run_dir}: the run has not finished (no DONE or final/): nothing to publish")
    card = Upload(CARD, content=str(build_card(parts)).encode())
    if variant == "model":
        files = _files(model.final_dir, exclude={ADAPTER, CARD, SOURCES})
        return sorted([*(Upload(p.relative_to(model.final_dir).as_posix(), source=p) for p in files), card],
                      key=lambda u: u.path_in_repo)  # fmt: skip
    folder = model.final_dir / ADAPTER
    if not model.lora or not (folder / "adapter_config.json").is_file():
        raise CardError(f"{model.run_dir}: no LoRA adapter in final/{ADAPTER}/ (full fine-tuning: push the model)")
    config = json.loads((folder / "adapter_config.json").read_text())
    if model.base_id:  # the hub id, not this machine's path to the base model
        config["base_model_name_or_path"] = model.base_id
    plan = [Upload(p.relative_to(folder).as_posix(), source=p)
            for p in _files(folder, exclude={"adapter_config.json", CARD})]  # fmt: skip
    plan += [Upload("adapter_config.json", content=(json.dumps(config, indent=2) + "\n").encode()), card]
    if (model.final_dir / PICTURE).is_file():
        plan.append(Upload(PICTURE, source=model.final_dir / PICTURE))
    return sorted(plan, key=lambda u: u.path_in_repo)


def _files(folder: Path, exclude: set[str]) -> list[Path]:
    """The files under ``folder`` but those whose first path part is in ``exclude`` and temporary ones."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or relative.parts[0] in exclude or path.name in _NOT_UPLOADED:
            continue
        if any(part.startswith(".partial") for part in relative.parts):
            continue
        found.append(path)
    return found


def describe(plan: Sequence[Upload]) -> str:
    """The plan as lines ``SIZE  PATH_IN_REPO  (from SOURCE | written by the harness)``."""
    lines = []
    for upload in plan:
        origin = f"from {upload.source}" if upload.source is not None else "written by the harness"
        lines.append(f"{_size(upload.size):>9}  {upload.path_in_repo}  ({origin})")
    lines.append(f"{_size(sum(u.size for u in plan)):>9}  in {len(plan)} files")
    return "\n".join(lines)


def stage(plan: Sequence[Upload], folder: str | Path) -> Path:
    """Write the plan's files into ``folder`` as the repository would hold them (links where it can)."""
    folder = Path(folder)
    for upload in plan:
        target = folder / upload.path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        if upload.content is not None:
            target.write_bytes(upload.content)
        else:
            try:
                os.link(upload.source, target)  # type: ignore[arg-type]
            except OSError:
                target.write_bytes(upload.source.read_bytes())  # type: ignore[union-attr]
    return folder


def push(plan: Sequence[Upload], repo_id: str, private: bool = False, revision: str | None = None,
         message: str | None = None) -> str:  # fmt: skip
    """Create ``repo_id`` if needed (and the branch ``revision``), then commit the plan in one commit;
    returns the commit's URL. A :class:`CardError` in one line without a token or the network."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    check_hub_access()
    api = HfApi()
    operations = [
        CommitOperationAdd(u.path_in_repo, u.content if u.content is not None else str(u.source)) for u in plan
    ]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        message = message or "Upload a model trained with tokenpo-harness"
        commit = api.create_commit(repo_id, operations, commit_message=message, revision=revision)
    except (HfHubHTTPError, OfflineModeIsEnabled) as error:
        raise CardError(f"{repo_id}: the hub refused the upload: {str(error).splitlines()[0]}") from error
    except OSError as error:  # connection errors of requests/httpx derive from OSError
        raise CardError(f"{repo_id}: cannot reach the hub ({error.__class__.__name__}): is there a network?") from error
    return str(commit.commit_url)


def check_hub_access() -> None:
    """A :class:`CardError` when no upload can start: the hub switched off, or no token."""
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        raise CardError("HF_HUB_OFFLINE is set: the hub cannot be reached (unset it; --dry-run lists the files)")
    if get_token() is None:
        raise CardError("no hub token: `hf auth login` or set HF_TOKEN (--dry-run lists the files without one)")


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
