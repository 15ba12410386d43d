"""The win rate in ``harness run`` (``eval.winrate``): every final model answers the prompt set once
(stage ``answers/LABEL``), and every model but the baseline's is judged against the baseline model of
its seed (stage ``winrate/LABEL``, after both models' answers).

Answers are a stage of their own because several judgments read the same baseline answers, and because a
different judge must not make the models answer again: the answers' key holds the model and the answer
settings, the judgment's key the two answers' keys and the judge.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tokenpo.evals.judges.winrate.answers import (
    generate_with,
    generation_settings,
    load_generator,
    read_answers,
    write_answers,
)
from tokenpo.evals.judges.winrate.choice import JudgeChoice
from tokenpo.evals.judges.winrate.prompts import Prompt, load_prompt_set
from tokenpo.evals.judges.winrate.run import answer_pairs, judge_and_write
from tokenpo.harness.models import resolve_model
from tokenpo.harness.pipeline.config import WinrateEval

ANSWERS = "answers.jsonl"  # OUT/answers/LABEL/answers.jsonl


def answer_settings(settings: WinrateEval, data_dir: Path | None) -> dict[str, Any]:
    """What decides a model's answers besides its weights: the answers stage's key."""
    return {
        "prompts": settings.prompts,
        "benchmarks": str(data_dir) if settings.needs_benchmarks else None,
        "limit": settings.limit,
        "max_new_tokens": settings.max_new_tokens,
        "batch_size": settings.batch_size,  # batches pad differently, which can move a greedy token
    }


def winrate_prompts(settings: WinrateEval, data_dir: Path | None) -> list[Prompt]:
    return load_prompt_set(settings.prompts, data_dir if settings.needs_benchmarks else None, settings.limit)


def write_model_answers(settings: WinrateEval, data_dir: Path | None, model_path: str, folder: Path) -> dict:
    """The model's greedy answers to the prompt set in ``folder/answers.jsonl``; the stage's summary."""
    prompts = winrate_prompts(settings, data_dir)
    model, tokenizer = load_generator(model_path)
    answers = generate_with(model, tokenizer, prompts, settings.max_new_tokens, settings.batch_size)
    write_answers(folder / ANSWERS, prompts, answers)
    return {
        "answers": len(answers),
        "truncated": sum(bool(answer.truncated) for answer in answers),
        "generation": generation_settings(model_path, tokenizer, settings.max_new_tokens, settings.batch_size),
    }


def resolved_judge(judge: JudgeChoice) -> JudgeChoice:
    """The judge with its served or reward model's spec resolved to a folder (a built-in name, a hub id)."""
    return dataclasses.replace(
        judge,
        serve=str(resolve_model(judge.serve)) if judge.serve else None,
        reward_model=str(resolve_model(judge.reward_model)) if judge.reward_model else None,
    )


def judge_against_baseline(
    settings: WinrateEval,
    data_dir: Path | None,
    candidate: Path,
    baseline: Path,
    out: Path,
    metadata: dict[str, Any],
) -> dict:
    """The candidate's answers (in the answers folder ``candidate``) judged against the baseline's; the
    result folder ``out`` and the stage's summary (the rates in percent, the pairs judged)."""
    prompts = winrate_prompts(settings, data_dir)
    pairs = answer_pairs(prompts, read_answers(candidate / ANSWERS, prompts), read_answers(baseline / ANSWERS, prompts))
    results = judge_and_write(
        pairs, resolved_judge(settings.judge), out, n_boot=settings.bootstrap, seed=settings.seed, metadata=metadata
    )
    harness = results["harness"]
    return {
        "pairs": harness["pairs"],
        "judged_pairs": harness["judged_pairs"],
        "win_rate_percent": harness["win_rate_percent"],
        "lc_win_rate_percent": harness["lc_win_rate_percent"],
        "position_bias": harness.get("position_bias"),
    }
