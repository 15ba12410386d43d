"""What makes one evaluation's answers what they are: the model's identity and the run's settings.

Two uses, one description:

- the answer journal's name (:func:`journal_digest`): an answer is reused only by a request to the
  same weights (or hub id at the same resolved revision), tokenizer, model and generation config,
  chat template, dtype, seeds, batch size, device, lm-eval version and prompting (generation
  arguments, system instruction, few-shot turns, where they differ from lm-eval's defaults) -- the
  request itself (its prompt and generation arguments) is in each entry's key;
- the result folder's claim (:func:`claim_folder`): a run into a folder that holds the answers or
  results of a different model, data, task configuration or settings refuses instead of mixing them.

:func:`run_identity` gathers both for one evaluation pass (:class:`RunIdentity`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.core.files import sha256_file, write_atomic
from tokenpo.core.fingerprint import fingerprint
from tokenpo.evals.errors import EvalError
from tokenpo.evals.evaluation import Evaluation
from tokenpo.evals.language_model import AnsweringModel
from tokenpo.evals.tasks.configs import TaskConfigs

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
)
CONFIG_FILES = ("config.json", "generation_config.json")
CLAIM = "identity.json"


def _text_sha(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def _files_sha(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in names if (folder / name).is_file()}


def resolve_hub_revision(model_id: str) -> str | None:
    """The commit a hub id resolves to: from the local hub cache, else asked of the hub; None when unknown."""
    try:
        from huggingface_hub import HfApi, constants
    except ImportError:
        return None
    ref = Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}" / "refs" / "main"
    if ref.is_file():
        return ref.read_text().strip()
    if constants.HF_HUB_OFFLINE:
        return None
    try:
        return HfApi().model_info(model_id).sha
    except Exception:  # no network, no such repo, no permission: the revision stays unknown, never guessed
        return None


def weights_identity(model: Any) -> dict[str, Any]:
    """The weights: the sha256 of a folder's weight files or of in-memory tensors; a hub id and its revision."""
    if isinstance(model, str | os.PathLike):
        folder = Path(model)
        files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")]) if folder.is_dir() else []
        if not files:
            return {"hub_id": str(model), "revision": resolve_hub_revision(str(model))}
        hasher = hashlib.sha256()
        for path in files:
            with open(path, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 22), b""):
                    hasher.update(block)
        return {"sha256": hasher.hexdigest()}
    import torch

    hasher = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        hasher.update(name.encode())
        hasher.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return {"sha256": hasher.hexdigest()}


def _in_memory_tokenizer(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return {
        "class": type(tokenizer).__name__,
        "state_sha256": _text_sha(state),
        "special_tokens": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "chat_template_sha256": _text_sha(getattr(tokenizer, "chat_template", None)),
    }


def model_identity(model: Any, tokenizer: Any, lm: Any, backend: str) -> dict[str, Any]:
    """Everything of the model that can change an answer (``lm``: the loaded lm-eval model, for its dtype)."""
    identity: dict[str, Any] = {"backend": backend, "weights": weights_identity(model)}
    folder = Path(model) if isinstance(model, str | os.PathLike) and Path(model).is_dir() else None
    if folder is not None:
        identity["config"] = _files_sha(folder, CONFIG_FILES)
    else:
        config = getattr(model, "config", None)
        generation = getattr(model, "generation_config", None)
        identity["config"] = {
            "config.json": _text_sha(config.to_json_string()) if config is not None else None,
            "generation_config.json": _text_sha(generation.to_json_string()) if generation is not None else None,
        }
    if tokenizer is not None and not isinstance(tokenizer, str | os.PathLike):
        identity["tokenizer"] = _in_memory_tokenizer(tokenizer)
    else:
        source = Path(tokenizer) if tokenizer is not None else folder
        identity["tokenizer"] = _files_sha(source, TOKENIZER_FILES) if source and source.is_dir() else str(tokenizer)
    inner = getattr(lm, "model", None)
    identity["dtype"] = str(getattr(inner, "dtype", None) or getattr(lm, "dtype", "unknown"))
    return identity


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def journal_digest(
    model: Mapping[str, Any],
    seeds: Mapping[str, Any],
    computation: Mapping[str, Any],
    prompting: Mapping[str, Any] | None = None,
) -> str:
    """The answer journal's name part: the model's identity, the seeds, how answers are computed
    (batch size and device: padding and kernels move log-likelihoods in their last bits), the
    lm-eval version and the prompting settings that differ from lm-eval's defaults
    (:attr:`Evaluation.prompting`; none: the name journals had before these settings existed)."""
    parts = {"model": model, "seeds": seeds, "computation": computation, "lm_eval": lm_eval_version()}
    if prompting:
        parts["prompting"] = prompting
    return fingerprint(parts)[:32]


def claim_folder(output_dir: Path, claim: Mapping[str, Any]) -> None:
    """Record what ``output_dir`` holds; refuse (EvalError, exit 2) if it holds another run's answers or results.

    ``claim`` maps the parts of a run (model, data, tasks, settings) to their descriptions; the first
    part that differs from the folder's recorded claim is named in the error.
    """
    path = Path(output_dir) / ".cache" / CLAIM
    cache = Path(output_dir) / ".cache"
    holds_work = any(cache.glob("requests-*.jsonl")) or (Path(output_dir) / "results.json").is_file()
    recorded = None
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except json.JSONDecodeError:
            recorded = None
    if holds_work and not isinstance(recorded, dict):
        raise EvalError(
            str(output_dir),
            "identity",
            "the folder holds answers or results of an unrecorded run (an older version); "
            "choose another output folder or delete this one",
        )
    if holds_work:
        for part in claim:
            if fingerprint(recorded.get(part)) != fingerprint(claim[part]):
                raise EvalError(
                    str(output_dir),
                    part,
                    f"the folder holds answers or results of a run with another {part}; "
                    "choose another output folder or delete this one",
                )
        return
    write_atomic(path, json.dumps(claim, indent=2, sort_keys=True, default=str) + "\n")


@dataclass(frozen=True)
class RunIdentity:
    """What one evaluation pass answers with and under: the model's identity (for a vLLM server, what the
    server computes with), how answers are computed, lm-eval's seeds, the settings that can change an
    answer or a score, the data and the digest of the task files."""

    model: dict[str, Any]
    computation: dict[str, Any]
    seeds: dict[str, int]
    settings: dict[str, Any]
    data: dict[str, Any]
    tasks: str
    prompting: dict[str, Any] = field(default_factory=dict)

    def claim(self) -> dict[str, Any]:
        """The folder's claim (:func:`claim_folder`). Settings come before tasks: the sandbox limits are in
        both (the code tasks' files carry them), and a run refused for them is told "settings"."""
        return {"model": self.model, "data": self.data, "settings": self.settings, "tasks": self.tasks}

    def journal(self, cache: Path) -> Path:
        """The answer journal in ``cache`` of every run with this model, these seeds, this computation and
        this prompting."""
        digest = journal_digest(self.model, self.seeds, self.computation, self.prompting)
        return Path(cache) / f"requests-{digest}.jsonl"


def run_identity(
    evaluation: Evaluation, answering: AnsweringModel, configs: TaskConfigs, tasks_digest: str
) -> RunIdentity:
    """The identity of ``evaluation`` answered by ``answering`` on the task files ``configs`` (their digest:
    ``tasks_digest``)."""
    model = model_identity(evaluation.model, evaluation.tokenizer, answering.lm, evaluation.backend)
    if answering.served is not None:  # what the server computes with, not what the harness process would load
        model.update(answering.served)
    computation = {
        "batch_size": evaluation.batches,
        "device": str(getattr(answering.lm, "device", evaluation.device)),
    }
    # What can change an answer or a score (the tasks chosen and --limit only select items: a run
    # with more items into the same folder reuses the answers it has; --predict-only changes neither: a
    # scored run into a predict-only run's folder reuses its answers).
    settings = {
        "computation": computation,
        "num_fewshot": evaluation.fewshot,
        "apply_chat_template": evaluation.chat_template,
        "seeds": evaluation.seeds,
        "lm_eval": lm_eval_version(),
        "sandbox": asdict(evaluation.sandbox),
        **evaluation.prompting,
    }
    data = {"source": "offline" if configs.offline else "online", "checksums": configs.checksums}
    return RunIdentity(model, computation, evaluation.seeds, settings, data, tasks_digest, evaluation.prompting)
