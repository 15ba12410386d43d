"""A win-rate judgment from end to end: pair the answers, judge every pair, score, write the result folder.

:func:`judge_and_write` is the whole of it for a :class:`JudgeChoice` (what ``harness judge winrate``
and the pipeline's win-rate stages run). ``judge_pairs_with_llm`` asks an OpenAI-compatible judge both
orders of every pair (journaled, so a killed run asks only what it had not);
``judge_pairs_with_reward_model`` scores both answers with a reward model. ``write_winrate`` writes what
every judge of this package writes: ``OUT/results.json`` (lm-eval's shape, task ``winrate``, plus the
``harness`` block) and ``OUT/samples/winrate.jsonl``, one row per pair (``win_rate``, the pair's outcome,
only on the pairs judged: the leaderboard's items). Rates in ``results.json`` are proportions (0–1) like
every other metric there; the intervals and the printed table say percent, as AlpacaEval reports them.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core import progress
from tokenpo.evals.errors import EvalError
from tokenpo.evals.judges.winrate.answers import LENGTH_UNIT, Answer
from tokenpo.evals.judges.winrate.choice import JudgeChoice
from tokenpo.evals.judges.winrate.endpoint import ChatEndpoint
from tokenpo.evals.judges.winrate.journal import JudgmentJournal, judge_key
from tokenpo.evals.judges.winrate.prompts import Prompt
from tokenpo.evals.judges.winrate.protocol import (
    ORDERS,
    SYSTEM_PROMPT,
    TEMPLATE_VERSION,
    USER_TEMPLATE,
    Judgment,
    judge_messages,
    pair_outcomes,
    position_bias,
)
from tokenpo.evals.judges.winrate.reward import RewardModelJudge
from tokenpo.evals.judges.winrate.server import serve_chat_model
from tokenpo.evals.judges.winrate.stats import paired_bootstrap
from tokenpo.evals.results import harness_version, judge_results, write_results, write_samples

TASK = "winrate"
JOURNAL = "judgments.jsonl"  # OUT/judgments.jsonl: every judgment the LLM judge gave, in order


@dataclass(frozen=True)
class AnswerPair:
    """One prompt with the candidate's and the baseline's answers to it."""

    prompt: Prompt
    candidate: Answer
    baseline: Answer


def answer_pairs(
    prompts: Sequence[Prompt], candidate: Mapping[str, Answer], baseline: Mapping[str, Answer]
) -> list[AnswerPair]:
    """Every prompt with both answers; a prompt either side did not answer is refused, never dropped."""
    for side, answers in (("candidate answers", candidate), ("baseline answers", baseline)):
        missing = [p.prompt_id for p in prompts if p.prompt_id not in answers]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise EvalError(side, "prompt_id", f"no answer to {len(missing)} of {len(prompts)} prompts: {shown}")
    return [AnswerPair(p, candidate[p.prompt_id], baseline[p.prompt_id]) for p in prompts]


def judge_pairs_with_llm(
    pairs: Sequence[AnswerPair],
    endpoint: ChatEndpoint,
    journal_path: Path,
    identity: Mapping[str, Any] | None = None,
) -> tuple[dict[str, float], list[str], list[Judgment]]:
    """Both orders of every pair, asked of ``endpoint`` (the journal's judgments reused): the outcomes by
    prompt, the prompts left unjudged (a failed or unparseable order), and every judgment.

    ``identity`` is what makes two runs' judges the same judge (default: the endpoint's settings, its URL
    included); a model the harness serves itself is identified by its folder, as its URL's port changes
    from run to run."""
    journal = JudgmentJournal(journal_path, judge_key(endpoint.model, identity or endpoint.settings()))
    judgments: list[Judgment] = []
    with progress.task("pairs judged (both orders)", total=2 * len(pairs), unit="judgment") as shown:
        for pair in pairs:
            for order in ORDERS:
                first, second = (
                    (pair.candidate, pair.baseline) if order == "candidate_first" else (pair.baseline, pair.candidate)
                )
                messages = judge_messages(pair.prompt.text, first.text, second.text)
                judgment = journal.done(pair.prompt.prompt_id, order, messages)
                if judgment is None:
                    reply = endpoint.complete(messages)
                    judgment = (
                        Judgment.of_reply(pair.prompt.prompt_id, order, reply.text)
                        if reply.text is not None
                        else Judgment.failed(pair.prompt.prompt_id, order, reply.error or "no reply")
                    )
                    journal.record(judgment, messages)
                judgments.append(judgment)
                shown.advance()
    outcomes, unjudged = pair_outcomes(judgments)
    return outcomes, unjudged, judgments


def judge_pairs_with_reward_model(
    pairs: Sequence[AnswerPair], judge: RewardModelJudge
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Each pair's outcome (1 when the candidate's reward is higher, ½ on a tie) and both rewards, by prompt."""
    compared = judge.compare_many(
        [p.prompt.text for p in pairs], [p.candidate.text for p in pairs], [p.baseline.text for p in pairs]
    )
    outcomes = {p.prompt.prompt_id: outcome for p, (outcome, _, _) in zip(pairs, compared, strict=True)}
    rewards = {p.prompt.prompt_id: (cand, base) for p, (_, cand, base) in zip(pairs, compared, strict=True)}
    return outcomes, rewards


def template_sha256() -> str:
    """The judge prompt's text, hashed: two runs with the same version string and a different text differ here."""
    return hashlib.sha256((SYSTEM_PROMPT + "\x00" + USER_TEMPLATE).encode()).hexdigest()


def write_winrate(
    out_dir: Path,
    pairs: Sequence[AnswerPair],
    outcomes: Mapping[str, float],
    judge: Mapping[str, Any],
    *,
    judgments: Sequence[Judgment] | None = None,
    rewards: Mapping[str, tuple[float, float]] | None = None,
    unjudged: Sequence[str] = (),
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the judged pairs and write the result folder; returns the results (``harness`` block included).

    The rates are over the pairs with an outcome; the unjudged ones are counted and listed, never scored."""
    judged = [p for p in pairs if p.prompt.prompt_id in outcomes]
    scored = (
        paired_bootstrap(
            [outcomes[p.prompt.prompt_id] for p in judged],
            [p.candidate.length for p in judged],
            [p.baseline.length for p in judged],
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
        if judged
        else None  # a judge that gave no verdict at all: counted and written, never scored as a tie
    )
    metrics = {}
    if scored is not None:
        rate, controlled = scored["win_rate"], scored["length_controlled_win_rate"]
        metrics = {
            "win_rate": (rate.value / 100, (rate.stderr or 0.0) / 100),
            # A refitted model's rate: its standard error is the bootstrap replicates' spread.
            "lc_win_rate": (controlled.value / 100, (controlled.stderr or 0.0) / 100),
        }
    results = judge_results(TASK, metrics, len(judged), dict(judge), {"win_rate": True, "lc_win_rate": True})
    by_order = _by_order(judgments or [])
    rows = []
    for index, pair in enumerate(pairs):
        pid = pair.prompt.prompt_id
        row: dict[str, Any] = {
            "doc_id": index,
            "prompt_key": pid,  # the prompt set's id; a samples file's prompt_id is an integer grouping of items
            "prompt": pair.prompt.text,
            "candidate": pair.candidate.text,
            "baseline": pair.baseline.text,
            "candidate_length": pair.candidate.length,
            "baseline_length": pair.baseline.length,
            "judged": pid in outcomes,
        }
        if pid in outcomes:  # an unjudged pair is no item of the rate: it has no score, not a score of None
            row["win_rate"] = outcomes[pid]
        for order in ORDERS if judgments is not None else ():
            judgment = by_order.get((pid, order))
            row[f"{order}_verdict"] = judgment and judgment.verdict
            row[f"{order}_error"] = judgment and judgment.error
        if rewards is not None and pid in rewards:
            row["candidate_reward"], row["baseline_reward"] = rewards[pid]
        rows.append(row)
    harness = {
        "judge": TASK,
        "harness_version": harness_version(),
        "pairs": len(pairs),
        "judged_pairs": len(judged),
        "unjudged_pairs": len(unjudged),
        "unjudged_prompt_ids": list(unjudged),
        "win_rate_percent": scored and _interval_record(scored["win_rate"]),
        "lc_win_rate_percent": scored and _interval_record(scored["length_controlled_win_rate"]),
        "interval": {"covers": "prompts", "n_boot": n_boot, "confidence": confidence, "seed": seed},
        "length_control": scored and _glm_record(scored),
        **({"position_bias": position_bias(judgments)} if judgments is not None else {}),
        **(metadata or {}),
    }
    write_samples(out_dir, TASK, rows)
    write_results(out_dir, results, harness)
    return {**results, "harness": harness}


def _by_order(judgments: Sequence[Judgment]) -> dict[tuple[str, str], Judgment]:
    return {(j.prompt_id, j.order): j for j in judgments}


def _glm_record(scored: Mapping[str, Any]) -> dict[str, Any]:
    glm = scored["glm"]
    return {"unit": LENGTH_UNIT, "theta": glm.theta, "phi": glm.phi, "sigma": glm.sigma, "penalty": glm.penalty,
            "penalised_resamples": scored["penalised_resamples"]}  # fmt: skip


def _interval_record(interval: Any) -> dict[str, Any]:
    return {"value": interval.value, "low": interval.low, "high": interval.high, "covers": interval.covers}


def served_identity(endpoint: ChatEndpoint, model_folder: str) -> dict[str, Any]:
    """A served model's judge identity: its folder and decoding, not the URL it happened to get."""
    return {**{k: v for k, v in endpoint.settings().items() if k != "base_url"}, "served": model_folder}


def llm_judge_record(endpoint: ChatEndpoint, identity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the results record of an LLM judge: its identity (default: the endpoint's settings; never a
    key) and the prompt."""
    settings = identity or endpoint.settings()
    return {"kind": "llm", **settings, "template": TEMPLATE_VERSION, "template_sha256": template_sha256()}


def judge_and_write(
    pairs: Sequence[AnswerPair],
    judge: JudgeChoice,
    out_dir: Path,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Judge every pair with ``judge`` and write the result folder ``out_dir`` (:func:`write_winrate`); an
    LLM judge's judgments are journaled in ``out_dir``, so a second call asks only what the first did not."""
    if judge.reward_model:
        reward_judge = RewardModelJudge(judge.reward_model)
        outcomes, rewards = judge_pairs_with_reward_model(pairs, reward_judge)
        record = {"kind": "reward-model", **reward_judge.settings()}
        return write_winrate(out_dir, pairs, outcomes, record, rewards=rewards, n_boot=n_boot, seed=seed,
                             metadata=metadata)  # fmt: skip
    with contextlib.ExitStack() as stack:
        if judge.serve:
            url, model = stack.enter_context(serve_chat_model(judge.serve)), Path(judge.serve).resolve().name
        else:
            url, model = judge.url, judge.model
        endpoint = ChatEndpoint(url, model, judge.key_env, max_tokens=judge.max_tokens, timeout=judge.timeout)
        endpoint.check()
        identity = served_identity(endpoint, judge.serve) if judge.serve else None
        out_dir.mkdir(parents=True, exist_ok=True)
        outcomes, unjudged, judgments = judge_pairs_with_llm(pairs, endpoint, out_dir / JOURNAL, identity)
    return write_winrate(
        out_dir,
        pairs,
        outcomes,
        llm_judge_record(endpoint, identity),
        judgments=judgments,
        unjudged=unjudged,
        n_boot=n_boot,
        seed=seed,
        metadata=metadata,
    )
