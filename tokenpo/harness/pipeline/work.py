"""What each stage of ``harness run`` does, as functions of the run's configuration and folders.

:mod:`tokenpo.harness.pipeline.run` decides which stage runs, when, and whether it is already done;
the work itself (building pairs, training and the model cards, sampling and judging, writing the
report) is here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenpo.core import progress
from tokenpo.core.builtin_models import BUILTIN_MODELS
from tokenpo.core.files import write_atomic
from tokenpo.core.weights import WeightsOrigin, describe_base_model
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import load_causal_lm, load_tokenizer
from tokenpo.harness.pipeline.config import BASE, RunConfig, SentimentPairs
from tokenpo.harness.pipeline.pairs import HELD_OUT, MIXTURE, held_out_examples, held_out_part, pair_record, read_pairs
from tokenpo.harness.pipeline.sentiment import build_pairs, load_prompts, prompt_sets, sample_continuations, write_jsonl

if TYPE_CHECKING:
    from tokenpo.trainers import TrainConfig, TrainResult
    from tokenpo.trainers.data import PreferenceExample


def sentiment_pairs(config: RunConfig, base_path: str, folder: Path) -> dict:
    """The sentiment-control pairs: the base model continues each opening, the judge scores, best vs worst."""
    from tokenpo.evals.judges.sentiment import score_texts

    settings = config.data.sentiment
    train_prompts, eval_prompts = prompt_sets(settings)
    model, tokenizer = load_causal_lm(base_path), load_tokenizer(base_path)
    continuations = sample_continuations(
        model,
        tokenizer,
        train_prompts,
        settings.completions_per_prompt,
        settings.max_new_tokens,
        settings.temperature,
        settings.top_k,
        settings.batch_size,
        seed=config.training.seed,
        description="continuations sampled",
    )
    flat = [item.text for sampled in continuations for item in sampled]
    flat_scores = score_texts(flat, settings.classifier)
    per_prompt = settings.completions_per_prompt
    scores = [flat_scores[i * per_prompt : (i + 1) * per_prompt] for i in range(len(train_prompts))]
    pairs, stats = build_pairs(train_prompts, continuations, scores, settings.min_margin)
    if not pairs:
        raise HarnessError("data.sentiment: no prompt gave a pair above min_margin; lower it or sample more")
    pairs, held_out = held_out_part(config.data, pairs, "data.sentiment pairs")
    write_jsonl(
        folder / "generations.jsonl",
        [
            {"prompt": p, "completion": c.text, "truncated": c.truncated, "p_positive": s}
            for p, sampled, values in zip(train_prompts, continuations, scores, strict=True)
            for c, s in zip(sampled, values, strict=True)
        ],
    )
    write_jsonl(folder / "pairs.jsonl", pairs)
    if held_out:
        write_jsonl(folder / HELD_OUT, held_out)
    (folder / "eval_prompts.txt").write_text("".join(p + "\n" for p in eval_prompts), encoding="utf-8")
    if stats.below_margin:
        progress.note(
            f"data: {stats.below_margin} of {stats.prompts} prompts gave no pair (best − worst "
            f"P(positive) < {settings.min_margin}); listed in data/generations.jsonl"
        )
    return {
        "pairs": len(pairs),
        "held_out": len(held_out),
        "prompts": stats.prompts,
        "below_margin": stats.below_margin,
        "mean_margin": round(stats.mean_margin, 4),
        "eval_prompts": len(eval_prompts),
        "continuations": len(flat),
        "truncated": stats.truncated,
    }


def file_pairs(config: RunConfig, folder: Path) -> dict:
    """The valid pairs of ``data.path`` (the first ``data.limit``) or of ``data.mixture``, less the held-out
    ones: ``pairs.jsonl`` and ``eval_pairs.jsonl``; invalid records to rejects.jsonl when skipped, the
    mixture's make-up to mixture.json."""
    data = config.data
    read = read_pairs(data, folder / "rejects.jsonl")
    examples, held_out = held_out_examples(data, read.examples)
    # The flags travel with the pairs, so training on data/pairs.jsonl gives the tokens data.path gives.
    for name, part in (("pairs.jsonl", examples), (HELD_OUT, held_out)):
        if part or name == "pairs.jsonl":
            write_jsonl(folder / name, [pair_record(e) for e in part])
    summary = {"pairs": len(examples), "held_out": len(held_out), "records": read.records, "skipped": read.skipped}
    if read.mixture is not None:
        write_atomic(folder / MIXTURE, json.dumps(read.mixture, indent=1) + "\n")
        summary["mixture"] = {source["label"]: source["drawn"] for source in read.mixture}
    return summary


def train_with_cards(
    config: TrainConfig,
    model_path: str,
    examples: Sequence[PreferenceExample],
    run_dir: str | os.PathLike[str],
    config_record: Mapping | None = None,
    eval_examples: Sequence[PreferenceExample] = (),
    tracker_group: str | None = None,
) -> TrainResult:
    """:func:`tokenpo.trainers.train` (same arguments), then the run's model cards
    (:func:`write_training_cards`): what ``harness train`` and the pipeline's train stage run. A training
    that fails still leaves a card in every checkpoint it saved before the failure."""
    from tokenpo.trainers import train

    try:
        result = train(
            config,
            model_path,
            examples,
            run_dir,
            config_record=config_record,
            eval_examples=eval_examples,
            tracker_group=tracker_group,
        )
    except Exception:
        # The training's own error is the one to report: a card that cannot be written now will be
        # written when the run is resumed.
        with contextlib.suppress(Exception):
            write_training_cards(run_dir)
        raise
    write_training_cards(run_dir)
    return result


def write_training_cards(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The card of every checkpoint of the run folder ``run_dir`` that has none (training only, as the run
    stood at its step), then, once the run has finished, its final model's card (the method and training;
    the report adds the evaluation) unless it has one, which may hold an evaluation already. A run
    interrupted and resumed gets the cards of the checkpoints saved before the interruption here too.
    Returns the cards written; only the main process of a distributed training writes them."""
    from tokenpo.cards import has_card, write_checkpoint_card, write_run_card
    from tokenpo.trainers.runfolder import RunFolder

    run = RunFolder(run_dir)
    steps = [step for step in sorted(run.checkpoint_steps()) if not has_card(run.checkpoint(step))]
    final = run.done.is_file() and not has_card(run.final)
    if not (steps or final) or not _main_process():
        return []
    written = [write_checkpoint_card(run.checkpoint(step), run.root, step) for step in steps]
    if final:
        written.append(write_run_card(run.root))
    return written


def _main_process() -> bool:
    """Whether this process writes a run's shared files: the only one, or the first of an ``accelerate launch``."""
    from accelerate import PartialState

    return PartialState().is_main_process


def sentiment_eval(config: RunConfig, base_path: str, model: Any, data_folder: Path, out: Path, metadata: dict) -> dict:
    """Positive rate and KL to the base model of ``model``'s samples on the held-out openings."""
    from tokenpo.evals.judges.files import judge_sentiment

    settings = config.eval.sentiment
    prompts_file = data_folder / "eval_prompts.txt"
    # Without sentiment-control data, the last built-in openings serve as held-out prompts.
    prompts = (
        load_prompts(str(prompts_file))
        if prompts_file.is_file()
        else load_prompts("builtin")[-SentimentPairs.eval_prompts :]
    )
    policy, tokenizer = load_causal_lm(model.path), load_tokenizer(model.path)
    reference = policy if model.method == BASE else load_causal_lm(base_path)
    pairs_settings = config.data.sentiment or SentimentPairs()
    with eval_autocast(settings.mixed_precision, policy):
        continuations = sample_continuations(
            policy,
            tokenizer,
            prompts,
            settings.samples_per_prompt,
            settings.max_new_tokens,
            settings.temperature,
            batch_size=settings.batch_size or pairs_settings.batch_size,
            seed=1_000 + (model.seed or 0),
            description="samples (sentiment)",
        )
    out.mkdir(parents=True, exist_ok=True)
    texts = out / "generations.jsonl"
    write_jsonl(
        texts,
        [{"prompt": p, "completion": c.text} for p, group in zip(prompts, continuations, strict=True) for c in group],
    )
    models = (policy, reference, tokenizer)
    with eval_autocast(settings.mixed_precision, policy):
        scored = judge_sentiment(
            texts,
            out,
            pairs_settings.classifier,
            models,
            metadata={**metadata, "mixed_precision": settings.mixed_precision},
        )
    return {
        key: scored["results"]["sentiment"].get(f"{key},none") for key in ("positive_rate", "p_positive", "kl_to_ref")
    }


def eval_autocast(mixed_precision: str, model: Any):
    """bf16 autocast on the model's device for ``mixed_precision: bf16`` (float32 where bf16 is emulated, said once)."""
    import contextlib

    import torch

    from tokenpo.core.hardware import native_bf16

    if mixed_precision != "bf16":
        return contextlib.nullcontext()
    if not native_bf16():
        progress.note(
            "warning: eval.sentiment.mixed_precision is bf16 but this CPU has no native bf16: float32 instead"
        )
        return contextlib.nullcontext()
    return torch.autocast(device_type=next(model.parameters()).device.type, dtype=torch.bfloat16)


def write_report(
    config: RunConfig,
    output: Path,
    results: list[Path],
    base_weights: WeightsOrigin | None = None,
    log_to_trackers: bool = False,
) -> tuple[str, Path | None]:
    """leaderboard.md, report.html, frontier.svg and summary.json of the run, and the trained models' cards;
    the leaderboard's markdown and the report's path (None without html). ``base_weights``: where the base
    model's weights came from (its manifest), said in the report's header, the summary and the cards.
    ``log_to_trackers``: also log each trained model's evaluation to its ``training.report_to`` trackers
    (:mod:`tokenpo.harness.pipeline.tracking`; the caller asks once per change of the report's inputs)."""
    from tokenpo.leaderboards.frontier import frontier_points, frontier_records, frontier_svg
    from tokenpo.leaderboards.matched import path_records
    from tokenpo.leaderboards.render import render
    from tokenpo.leaderboards.report import build_html
    from tokenpo.leaderboards.report_leaderboard import paths_svg
    from tokenpo.leaderboards.runs import load_runs, mask_weight_records
    from tokenpo.leaderboards.table import build_leaderboard

    baseline = config.report.baseline
    board = build_leaderboard(results, baseline=baseline, margin=config.report.equivalence_margin)
    leaderboard = render(board, "md")
    write_atomic(output / "leaderboard.md", leaderboard)
    runs = load_runs(sorted(path.parent for path in (output / "train").glob("*/metrics.jsonl")))
    base_model = base_model_line(config.model, base_weights)
    report = write_atomic(output / "report.html", build_html(board, runs, base_model)) if config.report.html else None
    points = frontier_points(board.results, confidence=board.confidence, n_boot=board.n_boot, seed=board.seed)
    if points and len({(p.task, p.model) for p in points}) == 1:
        write_atomic(output / "frontier.svg", frontier_svg(points))
    paths = paths_svg(board)
    if paths is not None:
        write_atomic(output / "paths.svg", paths)
    summary = {
        "run": config.name,
        "model": config.model,
        "base_weights": base_weights.as_record() if base_weights is not None else None,
        # Each method against the baseline at the baseline's final KL, along its evaluated checkpoints.
        "verdicts": {v.method: v.record() for v in board.verdicts},
        # Each trained run's evaluated (step, KL, reward), from the base model's point: what the verdicts read.
        "paths": path_records(board.results),
        "frontier": frontier_records(points),
        "training": mask_weight_records(runs),
        # Each judged model's pairs, how many the judge decided, and its position bias (eval.winrate).
        "winrate": winrate_records(output),
        "leaderboard": json.loads(render(board, "json")),
        # Every stage's own time, also of stages an earlier, interrupted invocation finished.
        "seconds": {
            name: json.loads(marker.read_text())["summary"].get("seconds")
            for marker in sorted(output.glob("**/stage.json"))
            if ".superseded-" not in (name := marker.parent.relative_to(output).as_posix())
        },
    }
    write_atomic(output / "summary.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")
    write_cards(output, baseline, base_weights)
    if log_to_trackers:
        from tokenpo.harness.pipeline.tracking import log_evaluations

        log_evaluations(config, "config", output, board)
    return leaderboard, report


def winrate_records(output: Path) -> dict[str, dict[str, Any]]:
    """Per judged model (``winrate/LABEL``): its baseline, the pairs judged of all, both rates and the position
    bias, as its result recorded them."""
    records = {}
    for path in sorted((output / "winrate").glob("*/results.json")):
        harness = json.loads(path.read_text())["harness"]
        records[path.parent.name] = {
            "baseline": harness["baseline"]["label"],
            "pairs": harness["pairs"],
            "judged_pairs": harness["judged_pairs"],
            "win_rate_percent": harness["win_rate_percent"],
            "lc_win_rate_percent": harness["lc_win_rate_percent"],
            "position_bias": harness.get("position_bias"),
        }
    return records


def winrate_notes(records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per judged model: what its win rate rests on (the pairs decided, the judge's first-position
    share), so an unjudged or lopsided comparison is seen where the leaderboard is read."""
    notes = []
    for label, record in records.items():
        bias = record["position_bias"] or {}
        share = bias.get("first_share")
        first = (
            f"; the judge chose the first answer in {share:.0%} of its decisive judgments" if share is not None else ""
        )
        notes.append(
            f"win rate of {label} against {record['baseline']}: {record['judged_pairs']} of {record['pairs']} pairs "
            f"judged in both orders{first}"
        )
    return notes


def base_model_line(spec: str, origin: WeightsOrigin | None) -> str:
    """The report's line naming the base model (a built-in by its hub id) and where its weights came from."""
    builtin = BUILTIN_MODELS.get(spec)
    return describe_base_model(builtin.hub_id if builtin is not None and builtin.hub_id else spec, origin)


def write_cards(output: Path, baseline: str, base_weights: WeightsOrigin | None = None) -> list[Path]:
    """The model card of every finished training run (``train/NAME/final/README.md``) with its evaluation
    (benchmarks, judges, the win rate) against the baseline run of the same seed (all the baseline's seeds
    when that one is missing). ``base_weights`` stands in for the origin a run folder trained before it was
    recorded does not hold: the train stages' keys include the base model's manifest, so their runs started
    from these weights."""
    from tokenpo.cards import write_run_card

    evaluated = {
        folder.name: [path for kind in ("benchmarks", "sentiment") if (path := folder / kind / "results.json").exists()]
        + [path for path in (output / "winrate" / folder.name / "results.json",) if path.exists()]
        for folder in sorted((output / "eval").glob("*"))
    }
    cards = []
    for run_dir in sorted(done.parent for done in (output / "train").glob("*/DONE")):
        results = evaluated.get(run_dir.name, [])
        name, _, seed = run_dir.name.rpartition("-seed")
        if name == baseline or not results:
            base: list[Path] = []
        else:
            same_seed = evaluated.get(f"{baseline}-seed{seed}")
            base = same_seed or [p for label, paths in evaluated.items() if label.startswith(f"{baseline}-seed")
                                 for p in paths]  # fmt: skip
        cards.append(write_run_card(run_dir, results, base, base_weights=base_weights))
    return cards
