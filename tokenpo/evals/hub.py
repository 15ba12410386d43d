"""An evaluation's results and samples to a hub dataset, laid out as lm-eval's own hub logging lays them out.

``lm_eval --hf_hub_log_args hub_results_org=ORG,details_repo_name=NAME,push_results_to_hub=True,
push_samples_to_hub=True`` (lm-eval 0.4.13's ``EvaluationTracker``) writes, into the dataset
``ORG/NAME-private`` (``ORG/NAME`` with ``public_repo=True``):

- ``MODEL/results_DATE.json``: the results file (``save_results_aggregated``; MODEL: the model's name,
  ``org/name`` for a hub id);
- ``MODEL_SANITIZED/``: the folder its samples go to (``save_results_samples`` uploads the whole local
  folder): ``results_DATE.json`` again and ``samples_TASK_DATE.jsonl`` per task, each sample's
  ``arguments`` flattened to ``{"gen_args_I": {"arg_J": …}}``, ``resps`` and ``filtered_resps``
  sanitised and ``target`` a string, so that ``datasets`` can load them;
- ``README.md``: the dataset card with one configuration per model and task
  (``recreate_metadata_card``, from every results and samples file the repository holds).

:func:`hub_plan` gives the same files for a result folder (each local file and its path in the
repository; the samples converted into ``.cache/hub/``), :func:`upload_results` sends them in one
commit and has lm-eval recreate the card. One difference, on purpose: a local model is named by its
folder's name, not its path (lm-eval would put the machine's folders into the repository's paths).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core.files import write_atomic
from tokenpo.evals.errors import EvalError
from tokenpo.evals.evaluation import CACHE
from tokenpo.evals.result_folder import folder_name
from tokenpo.evals.results import LmEvalLayout

FLAG = "--hub-results"
CARD = "README.md"
STAGING = "hub"  # OUT/.cache/hub/: the samples as lm-eval uploads them
_REPO_PART = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class HubTarget:
    """Where results go: lm-eval's ``hub_results_org`` and ``details_repo_name``, and ``public_repo``."""

    org: str
    name: str
    public: bool = False

    @classmethod
    def parse(cls, text: str, public: bool = False) -> HubTarget:
        org, slash, name = text.partition("/")
        if not slash or not _REPO_PART.match(org) or not _REPO_PART.match(name):
            raise EvalError(FLAG, text, "expected ORG/NAME (lm-eval's hub_results_org and details_repo_name)")
        return cls(org, name, public)

    @property
    def repo_id(self) -> str:
        """The dataset, named as lm-eval names it: ``ORG/NAME``, or ``ORG/NAME-private`` for a private one."""
        return f"{self.org}/{self.name}" if self.public else f"{self.org}/{self.name}-private"


@dataclass(frozen=True)
class HubFile:
    """One file of the upload: the local file and its path in the repository."""

    local: Path
    path_in_repo: str


def hub_plan(output_dir: Path, layout: LmEvalLayout, model: Any) -> list[HubFile]:
    """The files lm-eval's hub logging would upload for the result folder ``output_dir`` of ``model``
    (``layout``: its files under lm-eval's names), the samples converted as lm-eval converts them."""
    sanitized = layout.folder.name
    plan = [HubFile(layout.results, f"{folder_name(model)}/{layout.results.name}")]
    plan.append(HubFile(layout.results, f"{sanitized}/{layout.results.name}"))
    staging = Path(output_dir) / CACHE / STAGING / sanitized
    for source in layout.samples.values():
        staged = staging / source.name
        write_atomic(staged, "".join(_hub_line(line) for line in source.read_text(encoding="utf-8").splitlines()))
        plan.append(HubFile(staged, f"{sanitized}/{source.name}"))
    unique = {file.path_in_repo: file for file in plan}  # a local model's two results paths are one
    return list(unique.values())


def _hub_line(line: str) -> str:
    return json.dumps(hub_sample(json.loads(line)), ensure_ascii=False) + "\n"


def hub_sample(row: Mapping[str, Any]) -> dict[str, Any]:
    """A logged sample as lm-eval's ``save_results_samples`` writes it (a GPQA row, whose text fields
    were removed, keeps only what it has)."""
    from lm_eval.utils import sanitize_list

    sample = dict(row)
    if "arguments" in sample:
        sample["arguments"] = {
            f"gen_args_{i}": {f"arg_{j}": value for j, value in enumerate(argument)}
            for i, argument in enumerate(sample["arguments"])
        }
    for key in ("resps", "filtered_resps"):
        if key in sample:
            sample[key] = sanitize_list(sample[key])
    if "target" in sample:
        sample["target"] = str(sample["target"])
    return sample


def describe_plan(plan: Sequence[HubFile], target: HubTarget) -> str:
    """The plan as lines ``LOCAL -> PATH_IN_REPO``, under the dataset's name, and the card last."""
    kind = "public" if target.public else "private; --hub-public for a public one, named without -private"
    lines = [f"hub dataset {target.repo_id} ({kind}):"]
    lines += [f"  {file.local} -> {file.path_in_repo}" for file in plan]
    lines.append(f"  (dataset card) -> {CARD}, remade by lm-eval from every results and samples file there")
    return "\n".join(lines)


def check_hub_access() -> str:
    """The hub token, when an upload can start; else an EvalError in one line naming ``--hub-results``:
    the hub switched off (HF_HUB_OFFLINE), no token, no network, or the token refused."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        raise EvalError(FLAG, "", "HF_HUB_OFFLINE is set: the hub cannot be reached (--dry-run plans the upload)")
    token = get_token()
    if token is None:
        raise EvalError(FLAG, "", "no hub token: `hf auth login` or set HF_TOKEN (--dry-run plans the upload)")
    try:
        HfApi(token=token).whoami()
    except HfHubHTTPError as error:
        raise EvalError(FLAG, "", f"the hub refused the token: {str(error).splitlines()[0]}") from None
    except Exception as error:  # connection errors come from the HTTP client, whichever it is
        raise EvalError(FLAG, "", f"cannot reach the hub ({type(error).__name__}): is there a network?") from None
    return token


def upload_results(plan: Sequence[HubFile], target: HubTarget, token: str, model: Any) -> str:
    """Create the dataset if new (private unless ``target.public``), commit the plan in one commit, then
    have lm-eval's ``EvaluationTracker`` remake the dataset card; returns the commit's URL. A card that
    cannot be made is reported in the returned text (the files are uploaded by then)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    operations = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in plan]
    try:
        api.create_repo(target.repo_id, repo_type="dataset", private=not target.public, exist_ok=True)
        commit = api.create_commit(
            target.repo_id,
            operations,
            commit_message=f"Adding results and samples for {folder_name(model)}",
            repo_type="dataset",
        )
    except HfHubHTTPError as error:
        raise EvalError(FLAG, target.repo_id, f"the hub refused the upload: {str(error).splitlines()[0]}") from None
    return f"{commit.commit_url}{_remade_card(target, token, model)}"


def _remade_card(target: HubTarget, token: str, model: Any) -> str:
    """lm-eval's own card for the dataset (``recreate_metadata_card``): "" when made, else why not."""
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(
        hub_results_org=target.org, details_repo_name=target.name, public_repo=target.public, token=token
    )
    local = not isinstance(model, str | os.PathLike) or Path(model).exists()
    tracker.general_config_tracker.model_name = folder_name(model)
    tracker.general_config_tracker.model_source = "local" if local else "hf"  # "hf": the card links the model
    try:
        tracker.recreate_metadata_card()
    except Exception as error:  # the upload is done; the card is lm-eval's and needs its datasets online
        return f" (dataset card not remade: {type(error).__name__}: {str(error).splitlines()[0][:200]})"
    return ""
