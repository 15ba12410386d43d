"""``evaluate``: run lm-eval tasks on a model (online, or offline from a prepared data folder) into a result folder."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.core.catalog import headlines, load_catalog
from tokenpo.core.fingerprint import fingerprint
from tokenpo.evals.backends import build_lm
from tokenpo.evals.errors import EvalError
from tokenpo.evals.identity import claim_folder, journal_digest, lm_eval_version, model_identity
from tokenpo.evals.results import harness_version, link_lm_eval_layout, write_results, write_samples
from tokenpo.evals.resume import ResumableLM
from tokenpo.evals.suites import Suite, load_suite, parse_tasks, task_name
from tokenpo.evals.vllm_server import ServerBackend
from tokenpo.sandbox import SandboxLimits

CACHE = ".cache"
LM_EVAL_DEFAULT_SEEDS = {
    "random_seed": 0,
    "numpy_random_seed": 1234,
    "torch_random_seed": 1234,
    "fewshot_random_seed": 1234,
}
SEED_ARGUMENTS = tuple(LM_EVAL_DEFAULT_SEEDS)


@dataclass
class EvalRun:
    """What :func:`evaluate` produced: the folder, lm-eval's results (no samples) and the reuse counts."""

    output_dir: Path
    results: dict[str, Any]
    reused_requests: int = 0
    computed_requests: int = 0
    sample_files: list[Path] = field(default_factory=list)


def _task_files_digest(root: Path) -> str:
    """sha256 over the task YAMLs this run wrote under ``root`` (names and contents; ``root`` itself, which
    differs between a run and its shards, as ``<root>``)."""
    files = sorted(p for folder in ("tasks", "overrides") for p in (root / folder).glob("**/*.yaml"))
    contents = {str(p.relative_to(root)): p.read_text(encoding="utf-8").replace(str(root), "<root>") for p in files}
    return fingerprint(contents)


def _record_as_lm_eval_tracker_does(results: dict[str, Any], tracker: Any, model: Any) -> None:
    """Add what lm-eval's ``EvaluationTracker`` adds to a results file: its general config (chat
    template and its hash, system instruction, few-shot as multi-turn, model name, times) and each
    task's hash over its samples' document, prompt and target hashes."""
    from lm_eval.utils import hash_string, sanitize_model_name

    general = tracker.general_config_tracker
    general.model_name = str(model) if isinstance(model, str | os.PathLike) else type(model).__name__
    general.model_name_sanitized = sanitize_model_name(_folder_name(model))
    general.log_end_time()
    results["task_hashes"] = {
        task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))
        for task, samples in results.get("samples", {}).items()
    }
    results.update(asdict(general))


def _folder_name(model: Any) -> str:
    """What names the model's folder in lm-eval's layout (``model_name_sanitized``): a hub id as lm-eval
    does (``org/name`` → ``org__name``), a local folder by its own name. lm-eval would name it after
    the whole path, which puts the machine's folders (the user's home among them) into the result
    folder's name: ``__home__ada__.cache__tokenpo__models__smollm2-135m-instruct``."""
    if not isinstance(model, str | os.PathLike):
        return type(model).__name__
    path = Path(model)
    return path.resolve().name if path.exists() else str(model)


def _select(tasks: list[str] | None, suite: str | Suite | None) -> Suite:
    if (tasks is None) == (suite is None):
        raise EvalError("evaluate", "tasks/suite", "give exactly one of tasks and suite")
    if suite is not None:
        return suite if isinstance(suite, Suite) else load_suite(suite)
    return Suite(name="custom", tasks=parse_tasks("--tasks", list(tasks)))


def _language_model(stack, backend, model, tokenizer, batch_size, device, server, log, answered):
    """The lm-eval model to answer with, and for a vLLM server what it computes with (else None).

    ``log``: the started server's output; ``answered``: every answer is journaled already (the pass
    after shards), so no server is started."""
    if backend != "vllm-server":
        return build_lm(backend, model, tokenizer, batch_size=batch_size, device=device), None
    from tokenpo.evals import vllm_server
    from tokenpo.evals.served_lm import OPENAI_STOP_STRINGS

    if server is None:
        raise EvalError("--backend", "vllm-server", "needs a vLLM environment (--vllm-python) or a server (--base-url)")
    if not isinstance(model, str | os.PathLike) or not Path(model).is_dir():
        raise EvalError("--backend", "vllm-server", "serves a model folder (pull or save the model first)")
    name = server.served_name or str(model)
    if answered:
        base_url = vllm_server.NO_SERVER
    else:
        base_url = server.base_url or stack.enter_context(server.start(str(model), log)).base_url
        vllm_server.check_server(base_url, name, _local_tokenizer(tokenizer, model))
    stops = OPENAI_STOP_STRINGS if server.base_url else vllm_server.STARTED_STOP_STRINGS
    lm = vllm_server.completions_lm(base_url, name, str(model), server.max_model_len, server.concurrent, stops)
    computes = server.identity(str(model))
    return lm, {"dtype": computes["dtype"], "server": computes}


def _local_tokenizer(tokenizer: Any, model: Any) -> Any:
    if tokenizer is not None and not isinstance(tokenizer, str | os.PathLike):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer or model))


def evaluate(
    model: Any,
    tokenizer: Any = None,
    *,
    tasks: list[str | dict[str, Any]] | None = None,
    suite: str | Suite | None = None,
    output_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    backend: str = "hf",
    batch_size: int = 8,
    device: str | None = None,
    num_fewshot: int | None = None,
    apply_chat_template: bool | None = None,
    seed: int | None = None,
    sandbox: SandboxLimits | None = None,
    metadata: dict[str, Any] | None = None,
    server: ServerBackend | None = None,
    shards: int = 1,
    shard: tuple[int, int] | None = None,
) -> EvalRun:
    """Evaluate ``model`` on ``tasks`` or a ``suite`` and write a result folder (docs/file-formats.md).

    model: a folder or hub id, or (``hf`` backend) an in-memory ``PreTrainedModel`` with ``tokenizer``.
    data_dir: a folder made by ``harness data prepare``: run offline on it (the official task
        definitions with only their data source redirected). None: lm-eval's tasks on the hub.
    limit: at most this many documents per task (default: the suite's, else all).
    seed: sets lm-eval's four seeds (Python, NumPy, torch, few-shot sampling); None keeps lm-eval's
        defaults (0, 1234, 1234, 1234), so few-shot examples are those of a plain ``lm_eval`` run.
    server: for ``backend="vllm-server"``: the vLLM environment to start a server from, or the URL of a
        running one (:class:`tokenpo.evals.vllm_server.ServerBackend`).
    shards: answer the requests in that many processes (each with its own model or server) on disjoint
        parts, then score them all here: the same answers and results as one process.
    shard: ``(i, n)``: be the i-th of n such processes (answers journaled, no results written).
    metadata: extra keys for the results' ``harness`` block (``model_spec``, ``method``, ``run``, …).
    Re-running into the same ``output_dir`` reuses every model answer already journaled there.
    """
    arguments = {k: v for k, v in locals().items() if k not in {"shards", "shard"}}  # what each shard runs
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from tokenpo.evals.tasks import code
    from tokenpo.evals.tasks.configs import verify_checksums, write_task_configs

    sandbox = sandbox or code.LM_EVAL_LIMITS
    chosen = _select(tasks, suite)
    output_dir = Path(output_dir).resolve()
    cache = output_dir / CACHE
    tasks_root = cache if shard is None else cache / f"shard-{shard[0]}"  # shards write their task files apart
    data_dir = Path(data_dir).resolve() if data_dir is not None else None
    for stale in ("tasks", "overrides"):  # every run writes its task files anew: no earlier run's may load
        shutil.rmtree(tasks_root / stale, ignore_errors=True)
    configs = write_task_configs(tasks_root / "tasks", data_dir)
    configs.write_overrides(tasks_root / "overrides", [spec for spec in chosen.tasks if isinstance(spec, dict)])
    names = [task_name(spec) for spec in chosen.tasks]
    if configs.offline:
        missing = [n for n in names if n not in configs.tasks]
        if missing:
            raise EvalError(
                str(data_dir),
                missing[0],
                "task not available offline (its benchmark is not prepared "
                f"there, or it is not mirrored); available: {', '.join(sorted(configs.tasks))[:400]}",
            )
        verify_checksums(data_dir, configs.checksums)
    code.SANDBOX["limits"] = sandbox
    if shards > 1 and shard is None:
        from tokenpo.evals.shards import run_shards

        if not isinstance(model, str | os.PathLike):
            raise EvalError("shards", str(shards), "shards load the model themselves: give a folder or hub id")
        arguments["output_dir"] = output_dir
        run_shards(shards, evaluate, arguments)
    answered = shards > 1 and shard is None  # the shards answered every request: this pass only scores

    # A vLLM server (vllm-server backend) lives for this block: stopped on success, error or Ctrl-C.
    with contextlib.ExitStack() as stack:
        server_log = tasks_root / "vllm-server.log"  # each shard's server its own
        inner, served = _language_model(
            stack, backend, model, tokenizer, batch_size, device, server, server_log, answered
        )
        seeds = {**LM_EVAL_DEFAULT_SEEDS, **({} if seed is None else dict.fromkeys(SEED_ARGUMENTS, seed))}
        model_id = model_identity(model, tokenizer, inner, backend)
        if served is not None:  # what the server computes with, not what the harness process would load
            model_id.update(served)
        computation = {"batch_size": batch_size, "device": str(getattr(inner, "device", device))}
        # What can change an answer or a score (the tasks chosen and --limit only select items: a run
        # with more items into the same folder reuses the answers it has).
        settings = {
            "computation": computation,
            "num_fewshot": num_fewshot if num_fewshot is not None else chosen.num_fewshot,
            "apply_chat_template": chosen.apply_chat_template if apply_chat_template is None else apply_chat_template,
            "seeds": seeds,
            "lm_eval": lm_eval_version(),
            "sandbox": sandbox.__dict__,
        }
        data = {"source": "offline" if configs.offline else "online", "checksums": configs.checksums}
        claim = {"model": model_id, "data": data, "tasks": _task_files_digest(tasks_root), "settings": settings}
        claim_folder(output_dir, claim)  # a run and its shards make the same claim
        journal = cache / f"requests-{journal_digest(model_id, seeds, computation)}.jsonl"
        lm = ResumableLM(inner, journal, shard=shard, answered=answered)
        tracker = EvaluationTracker()  # lm-eval's own record of chat template, system instruction, multiturn
        code.PROMPT_OF.clear()  # the prompts recorded for this run's predictions only, not every run's since start-up
        results = simple_evaluate(
            model=lm,
            tasks=names,
            num_fewshot=settings["num_fewshot"],
            limit=limit if limit is not None else chosen.limit,
            task_manager=configs.task_manager(),
            log_samples=True,
            apply_chat_template=settings["apply_chat_template"],
            confirm_run_unsafe_code=True,  # code runs only inside our sandbox (tokenpo.evals.tasks.code)
            bootstrap_iters=1000,
            evaluation_tracker=tracker,
            **seeds,
        )
        code.PROMPT_OF.clear()
        if shard is not None:  # its scores count placeholders for the other shards' answers: never written
            return EvalRun(output_dir, {}, lm.reused, lm.computed)
        _record_as_lm_eval_tracker_does(results, tracker, model)
        results["config"]["batch_size"] = batch_size
        used = {configs.tasks.get(n) for n in results["results"]} | {configs.tasks.get(n) for n in names}
        harness = {
            "model_spec": str(model) if isinstance(model, str | os.PathLike) else type(model).__name__,
            "model_path": str(model) if isinstance(model, str | os.PathLike) else None,
            "weights_sha256": model_id["weights"].get("sha256"),
            "model_identity": model_id,
            "dtype": model_id["dtype"],
            "method": "base",
            "seed": seed,  # None: lm-eval's defaults, listed in lm_eval_seeds
            "lm_eval_seeds": seeds,
            "run": None,
            **(metadata or {}),
            "suite": chosen.name,
            "headline": headlines(load_catalog(), results["results"]),
            "data_source": data["source"],
            "data_dir": str(data_dir) if data_dir else None,
            "data_checksums": configs.checksums,
            "data_notes": {b: note for b, note in configs.notes.items() if b in used},
            "harness_version": harness_version(),
            "backend": backend,
            "batch_size": batch_size,
            "journal": journal.name,
            "sandbox": sandbox.__dict__,
        }
        sample_files = [write_samples(output_dir, task, rows) for task, rows in results.get("samples", {}).items()]
        results_path = write_results(output_dir, results, harness)
        link_lm_eval_layout(output_dir, results["model_name_sanitized"], results_path, sample_files)
        body = {k: v for k, v in results.items() if k != "samples"}
        body["harness"] = harness
        return EvalRun(output_dir, body, lm.reused, lm.computed, sample_files)
