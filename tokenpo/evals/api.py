"""``evaluate``: run lm-eval tasks on a model (online, or offline from a prepared data folder) into a result folder.

An evaluation is a short sequence of jobs, each a function of what it is given (an
:class:`~tokenpo.evals.evaluation.Evaluation` and what earlier jobs returned): write the task files,
answer in shards (if asked), start the model (and a vLLM server, for the block), claim the folder,
journal the answers while lm-eval scores them, write the results. Nothing is kept between calls, so
two evaluations in one process (threads, or one after the other) do not see each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.evals.evaluation import Evaluation, RunFolders, select_suite
from tokenpo.evals.generation import applying_to_loads
from tokenpo.evals.identity import claim_folder, run_identity
from tokenpo.evals.language_model import answering_model
from tokenpo.evals.result_folder import write_result_folder
from tokenpo.evals.results import LmEvalLayout
from tokenpo.evals.resume import ResumableLM
from tokenpo.evals.shards import answer_in_shards
from tokenpo.evals.suites import Suite
from tokenpo.evals.task_files import task_files_digest, task_names, write_task_files
from tokenpo.evals.tasks.code import LM_EVAL_LIMITS
from tokenpo.evals.tasks.configs import TaskConfigs
from tokenpo.evals.vllm_server import ServerBackend
from tokenpo.sandbox import SandboxLimits


@dataclass
class EvalRun:
    """What :func:`evaluate` produced: the folder, lm-eval's results (no samples) and the reuse counts, and
    the folder's files under lm-eval's own names (None for a shard, which writes no results)."""

    output_dir: Path
    results: dict[str, Any]
    reused_requests: int = 0
    computed_requests: int = 0
    sample_files: list[Path] = field(default_factory=list)
    lm_eval_layout: LmEvalLayout | None = None


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
    batch_size: int | str | None = None,
    device: str | None = None,
    num_fewshot: int | None = None,
    apply_chat_template: bool | None = None,
    seed: int | None = None,
    sandbox: SandboxLimits | None = None,
    metadata: dict[str, Any] | None = None,
    server: ServerBackend | None = None,
    shards: int = 1,
    shard: tuple[int, int] | None = None,
    gen_kwargs: dict[str, Any] | None = None,
    system_instruction: str | None = None,
    fewshot_as_multiturn: bool | None = None,
    predict_only: bool = False,
) -> EvalRun:
    """Evaluate ``model`` on ``tasks`` or a ``suite`` and write a result folder (docs/file-formats.md).

    model: a folder or hub id, or (``hf`` backend) an in-memory ``PreTrainedModel`` with ``tokenizer``.
    data_dir: a folder made by ``harness data prepare``: run offline on it (the official task
        definitions with only their data source redirected). None: lm-eval's tasks on the hub.
    limit: at most this many documents per task (default: the suite's, else all).
    batch_size: one batch size for every request (an integer, or lm-eval's ``auto``); None: the hf backend's
        per request type (:data:`tokenpo.evals.backends.DEFAULT_BATCH`), vLLM's own scheduling.
    seed: sets lm-eval's four seeds (Python, NumPy, torch, few-shot sampling); None keeps lm-eval's
        defaults (0, 1234, 1234, 1234), so few-shot examples are those of a plain ``lm_eval`` run.
    sandbox: the limits each program of a code task runs under (default: lm-eval's 3 s timeout).
    server: for ``backend="vllm-server"``: the vLLM environment to start a server from, or the URL of a
        running one (:class:`tokenpo.evals.vllm_server.ServerBackend`).
    shards: answer the requests in that many processes (each with its own model or server) on disjoint
        parts, then score them all here: the same answers and results as one process.
    shard: ``(i, n)``: be the i-th of n such processes (answers journaled, no results written).
    gen_kwargs: generation arguments for every generative task (lm-eval's ``--gen_kwargs`` as a mapping;
        :func:`tokenpo.evals.generation.parse_gen_kwargs` reads its ``k=v,k=v``); they update the suite's
        ``gen_kwargs``, and a suite task's own ``generation_kwargs`` win over both.
    system_instruction: a system instruction before every prompt (None: the suite's; lm-eval's none).
    fewshot_as_multiturn: with a chat template, few-shot examples as turns of the chat (True) or one
        user turn (False); None: the suite's, else lm-eval's default (True).
    predict_only: answers without metrics (lm-eval's ``--predict_only``): the samples are written,
        every metric is lm-eval's placeholder ``bypass``; for judges that score the answers later.
    metadata: extra keys for the results' ``harness`` block (``model_spec``, ``method``, ``run``, …).
    Re-running into the same ``output_dir`` reuses every model answer already journaled there.
    """
    evaluation = Evaluation(
        model=model,
        tokenizer=tokenizer,
        suite=select_suite(tasks, suite),
        output_dir=Path(output_dir).resolve(),
        data_dir=Path(data_dir).resolve() if data_dir is not None else None,
        limit=limit,
        backend=backend,
        batch_size=batch_size,
        device=device,
        num_fewshot=num_fewshot,
        apply_chat_template=apply_chat_template,
        seed=seed,
        sandbox=sandbox or LM_EVAL_LIMITS,
        metadata=metadata,
        server=server,
        gen_kwargs=gen_kwargs,
        system_instruction=system_instruction,
        fewshot_as_multiturn=fewshot_as_multiturn,
        predict_only=predict_only,
    )
    return run_evaluation(evaluation, shards=shards, shard=shard)


def run_evaluation(evaluation: Evaluation, shards: int = 1, shard: tuple[int, int] | None = None) -> EvalRun:
    """One pass of ``evaluation``: the whole run, the i-th of n shards (``shard=(i, n)``: answers only), or,
    with ``shards`` > 1, the shards' run followed by the pass that scores their answers."""
    folders = RunFolders.of(evaluation.output_dir, shard)  # shards write their task files and server logs apart
    configs = write_task_files(folders.pass_dir, evaluation)
    answered = shards > 1 and shard is None  # the shards answer every request: this pass only scores
    if answered:
        answer_in_shards(shards, run_evaluation, evaluation)
    with answering_model(evaluation, folders.server_log, answered) as answering:
        identity = run_identity(evaluation, answering, configs, task_files_digest(folders.pass_dir))
        claim_folder(evaluation.output_dir, identity.claim())  # a run and its shards make the same claim
        journal = identity.journal(folders.cache)
        lm = ResumableLM(answering.lm, journal, shard=shard, answered=answered)
        results, tracker = score_with_lm_eval(lm, evaluation, configs)
    if shard is not None:  # its scores count placeholders for the other shards' answers: never written
        return EvalRun(evaluation.output_dir, {}, lm.reused, lm.computed)
    body, sample_files, layout = write_result_folder(evaluation, configs, identity, journal, results, tracker)
    return EvalRun(evaluation.output_dir, body, lm.reused, lm.computed, sample_files, layout)


def score_with_lm_eval(lm: Any, evaluation: Evaluation, configs: TaskConfigs) -> tuple[dict[str, Any], Any]:
    """lm-eval's results (samples logged) for ``evaluation``'s tasks answered by ``lm``, and lm-eval's
    ``EvaluationTracker`` (its own record of chat template, system instruction, multi-turn few-shot).

    The generation arguments reach the tasks through the task manager (task by task, see
    :mod:`tokenpo.evals.generation`), not ``simple_evaluate``'s ``gen_kwargs``, which would overrule
    a suite's own per-task values; for a run without those the two are the same update."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker()
    results = simple_evaluate(
        model=lm,
        tasks=task_names(evaluation),
        num_fewshot=evaluation.fewshot,
        limit=evaluation.documents,
        task_manager=applying_to_loads(configs.task_manager(), evaluation.generation),
        log_samples=True,
        system_instruction=evaluation.instruction,
        apply_chat_template=evaluation.chat_template,
        fewshot_as_multiturn=evaluation.multiturn,
        predict_only=evaluation.predict_only,
        confirm_run_unsafe_code=True,  # code runs only inside our sandbox (tokenpo.evals.tasks.code)
        bootstrap_iters=1000,
        evaluation_tracker=tracker,
        **evaluation.seeds,
    )
    return results, tracker
