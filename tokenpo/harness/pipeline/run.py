"""``harness run``: prepare data → train each method → evaluate base and trained models → report.

Every stage writes into its own folder under the run's output folder and is skipped when its
marker matches its inputs (:mod:`tokenpo.harness.pipeline.stages`); a killed run continues where it
stopped, because the trainer resumes from its checkpoints and the evaluator from its journal.

Layout of ``OUT/``::

    data/             pairs.jsonl (+ generations.jsonl, eval_prompts.txt for sentiment control)
    benchmark-data/   the offline benchmark mirror (when eval.data_dir is set)
    train/NAME-seedS/ trainer run folders
    eval/LABEL/       sentiment/ and benchmarks/ result folders per model (LABEL: base, NAME-seedS)
    leaderboard.md, report.html
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpo.core import progress
from tokenpo.core.config import to_mapping
from tokenpo.core.files import write_atomic
from tokenpo.core.fingerprint import fingerprint
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import load_causal_lm, load_tokenizer, resolve_model
from tokenpo.harness.models.store import MANIFEST
from tokenpo.harness.pipeline.config import RunConfig, SentimentPairs, method_training, seeded
from tokenpo.harness.pipeline.progress import SKIPPED
from tokenpo.harness.pipeline.sentiment import build_pairs, load_prompts, prompt_sets, sample_continuations, write_jsonl
from tokenpo.harness.pipeline.stages import Stage

BASE = "base"


@dataclass
class EvaluatedModel:
    """A model the pipeline evaluates: the base model or one trained run."""

    label: str
    method: str
    seed: int | None
    path: str
    key: str  # fingerprint of what produced the weights
    family: str = BASE  # the method's label whatever its hyper-parameters (e.g. "sparsepo-learned-common")
    beta: float | None = None
    health: list[dict] | None = None  # training-health flags; None: not checked (the base model)


@dataclass
class PipelineResult:
    output: Path
    leaderboard: str
    report: Path | None
    result_folders: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    skipped_stages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Pipeline:
    def __init__(self, config: RunConfig, source: str):
        self.config, self.source = config, source
        check_inputs(config, source)
        self.output = Path(config.output)
        self.base_path = resolve_model(config.model)
        self.base_key = fingerprint({"model": config.model, "identity": _model_identity(self.base_path)})
        self.trainings = [
            (run, seed, seeded(method_training(config, index, source), seed))
            for index, run in enumerate(config.methods)
            for seed in run.seeds
        ]
        self.benchmark_source = self._benchmark_source()
        evaluations = 1 + len(self.trainings)  # the base model and every trained one
        self.total_stages = 1 + (self.benchmark_source is not None) + len(self.trainings) + evaluations + 1
        self.result = PipelineResult(self.output, "", None)

    # ---------------------------------------------------------------- the stages

    def run(self) -> PipelineResult:
        self.output.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output / "run-config.json", json.dumps(to_mapping(self.config), indent=2) + "\n")
        with progress.task(f"run {self.config.name}", total=self.total_stages, unit="stage") as self.stages:
            data = self._data_stage()
            benchmark_data = self._benchmark_data_stage() if self.benchmark_source is not None else None
            models = [EvaluatedModel(BASE, BASE, None, self.base_path, self.base_key)]
            for run, seed, training in self.trainings:
                models.append(self._train_stage(run, seed, training, data))
            results: list[Path] = []
            for model in models:
                results.extend(self._eval_stage(model, data, benchmark_data))
            self.result.result_folders = results
            self._report_stage(results)
        return self.result

    def _stage(self, name: str, folder: Path, inputs: Any) -> Stage:
        return Stage(name, folder, fingerprint(inputs))

    def _timed(self, stage: Stage, label: str, work: Callable[[], dict]) -> dict:
        with progress.task(label, unit="stage") as shown:
            if stage.done():
                shown.advance(0, state=SKIPPED)
                self.result.skipped_stages.append(stage.name)
                summary = stage.summary()
            else:
                stage.prepare()
                started = time.monotonic()
                summary = work()
                summary["seconds"] = round(time.monotonic() - started, 1)
                self.result.timings[stage.name] = summary["seconds"]
                stage.finish(summary)
        self.stages.advance()
        return summary

    def _data_stage(self) -> Stage:
        data = self.config.data
        stage = self._stage("data", self.output / "data", {"base": self.base_key, "data": to_mapping(data)})
        self._timed(stage, "data: " + ("sentiment-control pairs" if data.sentiment else data.path), lambda: (
            self._sentiment_pairs(stage.folder) if data.sentiment else self._file_pairs(stage.folder)
        ))
        return stage

    def _sentiment_pairs(self, folder: Path) -> dict:
        from tokenpo.evals.judges.sentiment import score_texts

        settings = self.config.data.sentiment
        train_prompts, eval_prompts = prompt_sets(settings)
        model, tokenizer = load_causal_lm(self.base_path), load_tokenizer(self.base_path)
        continuations = sample_continuations(
            model, tokenizer, train_prompts, settings.completions_per_prompt, settings.max_new_tokens,
            settings.temperature, settings.top_k, settings.batch_size, seed=self.config.training.seed,
            description="continuations sampled",
        )
        flat = [text for texts in continuations for text in texts]
        flat_scores = score_texts(flat, settings.classifier)
        per_prompt = settings.completions_per_prompt
        scores = [flat_scores[i * per_prompt : (i + 1) * per_prompt] for i in range(len(train_prompts))]
        pairs, stats = build_pairs(train_prompts, continuations, scores, settings.min_margin)
        if not pairs:
            raise HarnessError("data.sentiment: no prompt gave a pair above min_margin; lower it or sample more")
        write_jsonl(folder / "generations.jsonl", [
            {"prompt": p, "completion": t, "p_positive": s}
            for p, texts, values in zip(train_prompts, continuations, scores, strict=True)
            for t, s in zip(texts, values, strict=True)
        ])
        write_jsonl(folder / "pairs.jsonl", pairs)
        (folder / "eval_prompts.txt").write_text("".join(p + "\n" for p in eval_prompts), encoding="utf-8")
        if stats.below_margin:
            progress.note(
                f"data: {stats.below_margin} of {stats.prompts} prompts gave no pair (best − worst "
                f"P(positive) < {settings.min_margin}); listed in data/generations.jsonl"
            )
        return {"pairs": stats.pairs, "prompts": stats.prompts, "below_margin": stats.below_margin,
                "mean_margin": round(stats.mean_margin, 4), "eval_prompts": len(eval_prompts)}

    def _file_pairs(self, folder: Path) -> dict:
        from tokenpo.trainers.data import load_preferences, write_rejects

        data = self.config.data
        loaded = load_preferences(data.path, fmt=data.format, split=data.split, skip_invalid=data.skip_invalid)
        if loaded.rejected:
            write_rejects(loaded.rejected, folder / "rejects.jsonl")
            progress.note(
                f"data: skipped {len(loaded.rejected)} invalid records of {loaded.total}; "
                f"written to {folder / 'rejects.jsonl'}"
            )
        examples = loaded.examples[: data.limit] if data.limit else loaded.examples
        write_jsonl(folder / "pairs.jsonl", [
            {"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected} for e in examples
        ])
        return {"pairs": len(examples), "records": loaded.total, "skipped": len(loaded.rejected)}

    def _benchmark_source(self) -> Path | None:
        settings = self.config.eval
        if settings.suite is None or settings.data_dir is None:
            return None
        source = Path(settings.data_dir)
        if not source.is_dir():
            if settings.when_unavailable == "error":
                raise HarnessError(f"{self.source}: eval.data_dir: {source} is not a folder")
            self.result.notes.append(f"benchmarks skipped: eval.data_dir {source} is not a folder")
            return None
        return source

    def _benchmark_data_stage(self) -> Path:
        from tokenpo.evals.data.prepare import prepare_benchmarks

        stage = self._stage("benchmark-data", self.output / "benchmark-data", {"source": str(self.benchmark_source)})
        self._timed(stage, "benchmarks: offline data", lambda: {
            "prepared": sorted(prepare_benchmarks(self.benchmark_source, stage.folder / "mirror").manifest)
        })
        return stage.folder / "mirror"

    def _train_stage(self, run, seed: int, training, data: Stage) -> EvaluatedModel:
        from tokenpo.trainers import TrainConfig, train
        from tokenpo.trainers.data import load_preferences

        name = f"{run.name}-seed{seed}"
        config = TrainConfig(run.method, training)
        record = {"model": self.config.model, "data": str(data.folder / "pairs.jsonl"), "name": name,
                  **to_mapping(config)}
        stage = self._stage(f"train/{name}", self.output / "train" / name,
                            {"base": self.base_key, "data": data.key, "config": to_mapping(config)})

        def work() -> dict:
            examples = load_preferences(str(data.folder / "pairs.jsonl")).examples
            result = train(config, self.base_path, examples, stage.folder, config_record=record)
            return {"steps": result.steps, "resumed_from": result.resumed_from, "final": str(result.final_dir),
                    "health": [flag.as_dict() for flag in result.health]}

        summary = self._timed(stage, f"train {run.name} (seed {seed})", work)
        return EvaluatedModel(name, run.name, seed, summary["final"], stage.key, run.method.label, run.method.beta,
                              summary.get("health"))

    def _eval_stage(self, model: EvaluatedModel, data: Stage, benchmark_data: Path | None) -> list[Path]:
        settings = self.config.eval
        folder = self.output / "eval" / model.label
        stage = self._stage(f"eval/{model.label}", folder,
                            {"model": model.key, "data": data.key, "eval": to_mapping(settings),
                             "benchmarks": str(benchmark_data)})
        metadata = {"model_spec": self.config.model if model.method == BASE else model.path,
                    "base_model": self.config.model, "method": model.method, "seed": model.seed,
                    "run": self.config.name, "method_family": model.family, "beta": model.beta}
        if model.health is not None:
            metadata["training_health"] = model.health

        def work() -> dict:
            summary: dict[str, Any] = {}
            if settings.sentiment is not None:
                summary["sentiment"] = self._sentiment_eval(model, data, folder / "sentiment", metadata)
            if benchmark_data is not None:
                summary["benchmarks"] = self._benchmark_eval(model, benchmark_data, folder / "benchmarks", metadata)
            return summary

        self._timed(stage, f"evaluate {model.label}", work)
        return [path for path in (folder / "sentiment", folder / "benchmarks") if (path / "results.json").is_file()]

    def _sentiment_eval(self, model: EvaluatedModel, data: Stage, out: Path, metadata: dict) -> dict:
        from tokenpo.evals.judges.files import judge_sentiment

        settings = self.config.eval.sentiment
        prompts_file = data.folder / "eval_prompts.txt"
        # Without sentiment-control data, the last built-in openings serve as held-out prompts.
        prompts = (
            load_prompts(str(prompts_file)) if prompts_file.is_file()
            else load_prompts("builtin")[-SentimentPairs.eval_prompts :]
        )
        policy, tokenizer = load_causal_lm(model.path), load_tokenizer(model.path)
        reference = policy if model.method == BASE else load_causal_lm(self.base_path)
        pairs_settings = self.config.data.sentiment or SentimentPairs()
        continuations = sample_continuations(
            policy, tokenizer, prompts, settings.samples_per_prompt, settings.max_new_tokens,
            settings.temperature, batch_size=pairs_settings.batch_size, seed=1_000 + (model.seed or 0),
            description="samples (sentiment)",
        )
        out.mkdir(parents=True, exist_ok=True)
        texts = out / "generations.jsonl"
        write_jsonl(texts, [{"prompt": p, "completion": t}
                            for p, group in zip(prompts, continuations, strict=True) for t in group])
        models = (policy, reference, tokenizer)
        scored = judge_sentiment(texts, out, pairs_settings.classifier, models, metadata=metadata)
        return {key: scored["results"]["sentiment"].get(f"{key},none")
                for key in ("positive_rate", "p_positive", "kl_to_ref")}

    def _benchmark_eval(self, model: EvaluatedModel, data_dir: Path, out: Path, metadata: dict) -> dict:
        from tokenpo.evals import evaluate
        from tokenpo.harness.vllm_env import server_backend

        settings = self.config.eval
        server = server_backend(settings.server) if settings.backend == "vllm-server" else None
        run = evaluate(model.path, suite=settings.suite, output_dir=out, data_dir=data_dir, limit=settings.limit,
                       backend=settings.backend, batch_size=settings.batch_size, server=server, shards=settings.shards,
                       apply_chat_template=settings.apply_chat_template, seed=settings.seed, metadata=metadata)
        return {"tasks": sorted(run.results["results"])}

    def _report_stage(self, results: list[Path]) -> None:
        with progress.task("leaderboard and report", unit="stage"):
            self._write_report(results)
        self.stages.advance()

    def _write_report(self, results: list[Path]) -> None:
        from tokenpo.leaderboards.frontier import frontier_points, frontier_records, frontier_svg
        from tokenpo.leaderboards.render import render
        from tokenpo.leaderboards.report import build_html
        from tokenpo.leaderboards.runs import load_runs, mask_weight_records
        from tokenpo.leaderboards.table import build_leaderboard

        baseline = self.config.report.baseline
        board = build_leaderboard(results, baseline=baseline)
        self.result.leaderboard = render(board, "md")
        write_atomic(self.output / "leaderboard.md", self.result.leaderboard)
        runs = load_runs(sorted(path.parent for path in (self.output / "train").glob("*/metrics.jsonl")))
        if self.config.report.html:
            self.result.report = write_atomic(self.output / "report.html", build_html(board, runs))
        points = frontier_points(board.results, confidence=board.confidence, n_boot=board.n_boot, seed=board.seed)
        if points and len({(p.task, p.model) for p in points}) == 1:
            write_atomic(self.output / "frontier.svg", frontier_svg(points))
        summary = {
            "run": self.config.name,
            "model": self.config.model,
            "frontier": frontier_records(points),
            "training": mask_weight_records(runs),
            "leaderboard": json.loads(render(board, "json")),
            # Every stage's own time, also of stages an earlier, interrupted invocation finished.
            "seconds": {
                name: json.loads(marker.read_text())["summary"].get("seconds")
                for marker in sorted(self.output.glob("**/stage.json"))
                if ".superseded-" not in (name := marker.parent.relative_to(self.output).as_posix())
            },
        }
        write_atomic(self.output / "summary.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")


def check_inputs(config: RunConfig, source: str) -> None:
    """Files the configuration names must exist before anything runs (a missing one names its key)."""
    data = config.data
    if data.path is not None:
        from tokenpo.trainers.data.readers import data_format

        if data_format(data.path) != "hub" and not Path(data.path).is_file():
            raise HarnessError(f"{source}: data.path: no such file: {data.path}")
    prompts = data.sentiment.prompts if data.sentiment is not None else "builtin"
    if prompts != "builtin" and not Path(prompts).is_file():
        raise HarnessError(f"{source}: data.sentiment.prompts: no such file: {prompts}")
    if config.eval.data_dir is not None and config.eval.when_unavailable == "error" and not Path(
        config.eval.data_dir
    ).is_dir():
        raise HarnessError(f"{source}: eval.data_dir: no such folder: {config.eval.data_dir}")
    if config.eval.suite is not None:
        from tokenpo.evals.suites import load_suite

        try:
            load_suite(config.eval.suite)
        except Exception as error:  # the suite loader's own errors name the file and key
            raise HarnessError(f"{source}: eval.suite: {error}") from None


def _model_identity(path: str) -> Any:
    """What identifies a model's weights cheaply: the built-in manifest, else file names and sizes."""
    folder = Path(path)
    if (folder / MANIFEST).is_file():
        return json.loads((folder / MANIFEST).read_text())
    if folder.is_dir():
        return sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
    return path  # a hub id


def run_pipeline(config: RunConfig, source: str) -> PipelineResult:
    """Run every stage of ``config`` (read from ``source``), reporting progress through :mod:`tokenpo.core.progress`."""
    return Pipeline(config, source).run()
