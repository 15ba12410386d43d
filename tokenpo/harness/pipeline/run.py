"""``harness run``: prepare data → train each method → evaluate base and trained models → report.

Every stage writes into its own folder under the run's output folder and is skipped when its
marker matches its inputs (:mod:`tokenpo.harness.pipeline.stages`); a killed run continues where it
stopped, because the trainer resumes from its checkpoints and the evaluator from its journal.

Layout of ``OUT/``::

    data/             pairs.jsonl (+ generations.jsonl, eval_prompts.txt for sentiment control; eval_pairs.jsonl
                      with held-out pairs; mixture.json with data.mixture)
    benchmark-data/   the offline benchmark mirror (when eval.data_dir is set)
    train/NAME-seedS/ trainer run folders
    eval/LABEL/       sentiment/ and benchmarks/ result folders per model (LABEL: base, NAME-seedS), and with
                      eval.checkpoints the same per checkpoint in eval/NAME-seedS/steps/step-N/
    answers/LABEL/    with eval.winrate: the final model's answers to the prompt set (answers.jsonl)
    winrate/LABEL/    with eval.winrate: the win-rate result folder against the baseline of LABEL's seed
    report/           the report stage's marker
    slurm/            with the slurm executor: the frozen config, jobs.json, submitit's job folders
    harness-run.lock  held by the local run working here (its pid inside)
    harness.log       what the libraries wrote during local runs (warnings, log records), appended
    leaderboard.md, report.html, summary.json

Why one module: :class:`Pipeline` keeps each stage's folder, fingerprint and work side by side, so what
makes a stage run again is read beside what it does.
"""

from __future__ import annotations

import dataclasses
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
from tokenpo.core.run_layout import MIXTURE_RECORD
from tokenpo.core.weights import read_weights_origin
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import resolve_model
from tokenpo.harness.models.store import MANIFEST
from tokenpo.harness.pipeline.config import BASE, RunConfig, method_training, seeded
from tokenpo.harness.pipeline.evaluated import EvaluatedModel
from tokenpo.harness.pipeline.pairs import HELD_OUT, MIXTURE
from tokenpo.harness.pipeline.progress import SKIPPED
from tokenpo.harness.pipeline.quiet import LOG, library_output_to
from tokenpo.harness.pipeline.stages import PlannedStage, Stage
from tokenpo.harness.pipeline.work import (
    file_pairs,
    sentiment_eval,
    sentiment_pairs,
    train_with_cards,
    winrate_notes,
    winrate_records,
    write_report,
)

CHECKPOINTS = "steps"  # eval/LABEL/steps/step-N/: a trained model's checkpoints evaluated on the way
# Settings added after run folders were made, with the values that leave a stage's work as it was: left
# out of the stage's key at those values, so upgrading the harness does not redo (move aside) finished
# stages.
LATER_KEYS: dict[str, dict[str, Any]] = {
    "data": {"name": None, "mixture": None, "eval_fraction": None, "eval_path": None, "eval_split": "test", "seed": 0},
    "training": {"eval_steps": 0},
    "eval": {"gen_kwargs": None, "system_instruction": None, "fewshot_as_multiturn": None},
}


def settled(mapping: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` without the ``later`` keys that hold their do-nothing value."""
    return {key: value for key, value in mapping.items() if not (key in later and value == later[key])}


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
        self.base_weights = read_weights_origin(self.base_path)  # its manifest: original, or dequantised GGUF
        self.base_key = fingerprint({"model": config.model, "identity": _model_identity(self.base_path)})
        self.trainings = [
            (run, seed, seeded(method_training(config, index, source), seed))
            for index, run in enumerate(config.methods)
            for seed in run.seeds
        ]
        self.result = PipelineResult(self.output, "", None)
        self.benchmark_source = self._benchmark_source()
        self.winrate = self._winrate_settings()
        self.stages: progress.Task | None = None  # the run-level task, when the whole run goes here

    # ---------------------------------------------------------------- the stages

    def plan(self) -> list[PlannedStage]:
        """Every stage in an order that runs each after the stages it reads."""
        prepared = ("data", "benchmark-data") if self.benchmark_source is not None else ("data",)
        stages = [PlannedStage.parse(name) for name in prepared]
        stages += [PlannedStage("train", name, ("data",)) for name in self.training_names()]
        stages.append(PlannedStage("eval", BASE, prepared))
        stages += [PlannedStage("eval", name, (*prepared, f"train/{name}")) for name in self.training_names()]
        if self.winrate is not None:
            stages.append(PlannedStage("answers", BASE))
            stages += [PlannedStage("answers", name, (f"train/{name}",)) for name in self.training_names()]
            stages += [
                PlannedStage("winrate", label, (f"answers/{label}", f"answers/{self.winrate_baseline(label)}"))
                for label in self.judged_labels()
            ]
        stages.append(PlannedStage("report", "", tuple(s.name for s in stages if s.kind in ("eval", "winrate"))))
        return stages

    def training_names(self) -> list[str]:
        return [f"{run.name}-seed{seed}" for run, seed, _ in self.trainings]

    def judged_labels(self) -> list[str]:
        """The models whose answers are judged against the baseline's: all but the baseline's own."""
        baseline = self.config.report.baseline
        return [label for label in (BASE, *self.training_names()) if label.rpartition("-seed")[0] != baseline]

    def winrate_baseline(self, label: str) -> str:
        """The baseline model ``label`` is judged against: the baseline's of the same seed, else its first."""
        run = next(run for run in self.config.methods if run.name == self.config.report.baseline)
        _, _, seed = label.rpartition("-seed")
        return f"{run.name}-seed{seed if seed.isdigit() and int(seed) in run.seeds else run.seeds[0]}"

    def run(self) -> PipelineResult:
        """Every stage here, one after another (the local executor); what the libraries write meanwhile
        goes to ``OUT/harness.log`` (:mod:`tokenpo.harness.pipeline.quiet`)."""
        from tokenpo.harness.pipeline.local import running

        self.start()
        plan = self.plan()
        # Each stage's kind, for the display's ETA, which estimates a stage from those of its kind that ran
        # before it. "" leaves a stage out: one an earlier run finished (no work left), and the report, the
        # only one of its kind and last (it would hide the ETA for the whole run; it takes seconds).
        kinds = tuple("" if stage.kind == "report" or self.stage_done(stage.name) else stage.kind for stage in plan)
        with (
            running(self.output),
            library_output_to(self.output / LOG),
            progress.task(f"run {self.config.name}", total=len(plan), unit="stage", kinds=kinds) as self.stages,
        ):
            for stage in plan:
                self.run_stage(stage.name)
        return self.result

    def start(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output / "run-config.json", json.dumps(to_mapping(self.config), indent=2) + "\n")

    def run_stage(self, name: str) -> None:
        """Run the stage ``name`` (skipped when its marker matches), reading what the stages before it wrote."""
        stage = self._planned(name)
        if stage.kind == "data":
            self._data_stage()
        elif stage.kind == "benchmark-data":
            self._benchmark_data_stage()
        elif stage.kind == "train":
            run, seed, training = self._training(stage.model)
            self._train_stage(run, seed, training, self.data_stage())
        elif stage.kind == "eval":
            self._eval_stage(self.evaluated_model(stage.model), self.data_stage(), self.benchmark_data())
        elif stage.kind == "answers":
            self._answers_stage(stage.model)
        elif stage.kind == "winrate":
            self._winrate_stage(stage.model)
        else:
            self._report_stage(self.result_folders())

    def _planned(self, name: str) -> PlannedStage:
        try:
            return PlannedStage.parse(name)
        except ValueError as error:
            raise HarnessError(f"{self.source}: {error}") from None

    def _training(self, label: str):
        for run, seed, training in self.trainings:
            if f"{run.name}-seed{seed}" == label:
                return run, seed, training
        raise HarnessError(f"{self.source}: no trained model named {label!r}")

    def evaluated_model(self, label: str) -> EvaluatedModel:
        """The base model, or a trained one as its finished training stage recorded it."""
        if label == BASE:
            return EvaluatedModel(BASE, BASE, None, self.base_path, self.base_key)
        run, seed, training = self._training(label)
        stage = self.train_stage(run, training)
        if not stage.done():
            raise HarnessError(f"{self.output}: eval/{label} needs train/{label}, which has not finished")
        return EvaluatedModel.trained(run, seed, stage, stage.summary())

    def result_folders(self) -> list[Path]:
        """Every evaluation's result folder: the base model's, each trained model's and its checkpoints'."""
        folders = []
        for label in (BASE, *self.training_names()):
            evaluated = self.output / "eval" / label
            models = [evaluated, *sorted(evaluated.glob(f"{CHECKPOINTS}/step-*"), key=_step_of)]
            folders += [model / kind for model in models for kind in ("sentiment", "benchmarks")]
            folders.append(self.output / "winrate" / label)
        return [folder for folder in folders if (folder / "results.json").is_file()]

    def _stage(self, name: str, folder: Path, inputs: Any) -> Stage:
        return Stage(name, folder, fingerprint(inputs))

    def _timed(self, stage: Stage, label: str, work: Callable[[], dict]) -> dict:
        with progress.task(label, unit="stage", kind=PlannedStage.parse(stage.name).kind) as shown:
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
        if self.stages is not None:
            self.stages.advance()
        return summary

    def data_stage(self) -> Stage:
        data = settled(to_mapping(self.config.data), LATER_KEYS["data"])
        return self._stage("data", self.output / "data", {"base": self.base_key, "data": data})

    def _data_stage(self) -> Stage:
        data = self.config.data
        stage = self.data_stage()
        self._timed(
            stage,
            "data: " + ("sentiment-control pairs" if data.sentiment else data.path or "mixture"),
            lambda: (
                sentiment_pairs(self.config, self.base_path, stage.folder)
                if data.sentiment
                else file_pairs(self.config, stage.folder)
            ),
        )
        return stage

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

    def benchmark_data(self) -> Path | None:
        return None if self.benchmark_source is None else self.output / "benchmark-data" / "mirror"

    def _benchmark_data_stage(self) -> Path:
        from tokenpo.evals.data.prepare import prepare_benchmarks

        stage = self.stage_for("benchmark-data")
        self._timed(
            stage,
            "benchmarks: offline data",
            lambda: {"prepared": sorted(prepare_benchmarks(self.benchmark_source, stage.folder / "mirror").manifest)},
        )
        return stage.folder / "mirror"

    def _train_stage(self, run, seed: int, training, data: Stage) -> EvaluatedModel:
        from tokenpo.trainers import TrainConfig
        from tokenpo.trainers.data import load_preferences

        name = f"{run.name}-seed{seed}"
        config = TrainConfig(run.method, training)
        record = {
            "model": self.config.model,
            "data": str(data.folder / "pairs.jsonl"),
            "name": name,
            **to_mapping(config),
        }
        if (data.folder / MIXTURE).is_file():
            record[MIXTURE_RECORD] = json.loads((data.folder / MIXTURE).read_text())
        stage = self.train_stage(run, training)

        def work() -> dict:
            examples = load_preferences(str(data.folder / "pairs.jsonl")).examples
            held_out = data.folder / HELD_OUT
            eval_examples = load_preferences(str(held_out)).examples if held_out.is_file() else []
            result = train_with_cards(
                config,
                self.base_path,
                examples,
                stage.folder,
                config_record=record,
                eval_examples=eval_examples,
                tracker_group=self.config.name,
            )
            return {
                "steps": result.steps,
                "resumed_from": result.resumed_from,
                "final": str(result.final_dir),
                "health": [flag.as_dict() for flag in result.health],
                "effective_beta": result.effective_beta,
                "anchor_coverage": result.anchor_coverage,
            }

        summary = self._timed(stage, f"train {run.name} (seed {seed})", work)
        return EvaluatedModel.trained(run, seed, stage, summary)

    def train_stage(self, run, training) -> Stage:
        from tokenpo.trainers import TrainConfig

        name = f"{run.name}-seed{training.seed}"
        config = to_mapping(TrainConfig(run.method, training))
        config["training"] = settled(config["training"], LATER_KEYS["training"])
        inputs = {"base": self.base_key, "data": self.data_stage().key, "config": config}
        return self._stage(f"train/{name}", self.output / "train" / name, inputs)

    def eval_stage(self, label: str, model_key: str) -> Stage:
        # The win rate is stages of its own: setting or changing it evaluates no model again.
        evaluation = {key: value for key, value in to_mapping(self.config.eval).items() if key != "winrate"}
        evaluation = settled(evaluation, LATER_KEYS["eval"])
        inputs = {
            "model": model_key,
            "data": self.data_stage().key,
            "eval": evaluation,
            "benchmarks": str(self.benchmark_data()),
        }
        return self._stage(f"eval/{label}", self.output / "eval" / label, inputs)

    def answers_stage(self, label: str) -> Stage:
        from tokenpo.harness.pipeline.winrate import answer_settings

        model_key = self.base_key if label == BASE else self.stage_for(f"train/{label}").key
        inputs = {"model": model_key, "answers": answer_settings(self.winrate, self._winrate_data())}
        return self._stage(f"answers/{label}", self.output / "answers" / label, inputs)

    def winrate_stage(self, label: str) -> Stage:
        settings = self.winrate
        inputs = {
            "candidate": self.answers_stage(label).key,
            "baseline": self.answers_stage(self.winrate_baseline(label)).key,
            "judge": to_mapping(settings.judge),
            "bootstrap": [settings.bootstrap, settings.seed],
        }
        return self._stage(f"winrate/{label}", self.output / "winrate" / label, inputs)

    def report_stage(self) -> Stage:
        """The report's marker (``report/stage.json``): it rewrites the files at the run's top each time it runs."""
        evaluations = [self.stage_for(f"eval/{label}").key for label in (BASE, *self.training_names())]
        inputs: dict[str, Any] = {"evaluations": evaluations, "report": to_mapping(self.config.report)}
        if self.winrate is not None:  # absent otherwise, so a run without win rate keeps its report's key
            inputs["winrate"] = [self.winrate_stage(label).key for label in self.judged_labels()]
        return self._stage("report", self.output / "report", inputs)

    def stage_for(self, name: str) -> Stage:
        """The stage ``name``'s folder and fingerprint, known before anything has run."""
        stage = self._planned(name)
        if stage.kind == "data":
            return self.data_stage()
        if stage.kind == "benchmark-data":
            return self._stage("benchmark-data", self.output / "benchmark-data", {"source": str(self.benchmark_source)})
        if stage.kind == "train":
            run, _, training = self._training(stage.model)
            return self.train_stage(run, training)
        if stage.kind == "eval":
            model_key = self.base_key if stage.model == BASE else self.stage_for(f"train/{stage.model}").key
            return self.eval_stage(stage.model, model_key)
        if stage.kind in ("answers", "winrate") and self.winrate is None:
            raise HarnessError(f"{self.source}: no stage {name}: eval.winrate is not set (or its prompts are skipped)")
        if stage.kind == "answers":
            return self.answers_stage(stage.model)
        if stage.kind == "winrate":
            return self.winrate_stage(stage.model)
        return self.report_stage()

    def stage_done(self, name: str) -> bool:
        return self.stage_for(name).done()

    def _eval_stage(self, model: EvaluatedModel, data: Stage, benchmark_data: Path | None) -> list[Path]:
        folder = self.output / "eval" / model.label
        stage = self.eval_stage(model.label, model.key)

        def work() -> dict:
            summary: dict[str, Any] = {}
            for checkpoint in self._checkpoints(model):
                # Each checkpoint is a stage of its own inside this one: a killed evaluation resumes after the
                # checkpoints it finished.
                step = self._stage(
                    f"{stage.name}/step-{checkpoint.step}",
                    folder / CHECKPOINTS / f"step-{checkpoint.step}",
                    {"evaluation": stage.key, "step": checkpoint.step},
                )
                if not step.done():
                    step.prepare()
                    started = time.monotonic()
                    done = self._evaluate(checkpoint, data, benchmark_data, step.folder)
                    step.finish(done | {"seconds": round(time.monotonic() - started, 1)})
                summary.setdefault("checkpoints", {})[str(checkpoint.step)] = step.summary()
            return summary | self._evaluate(model, data, benchmark_data, folder)

        self._timed(stage, f"evaluate {model.label}", work)
        return [path for path in (folder / "sentiment", folder / "benchmarks") if (path / "results.json").is_file()]

    def _checkpoints(self, model: EvaluatedModel) -> list[EvaluatedModel]:
        """The trained model's saved checkpoints that ``eval.checkpoints`` asks for, in step order."""
        if model.run_folder is None:  # the base model
            return []
        from tokenpo.trainers.runfolder import RunFolder

        saved = RunFolder(model.run_folder).checkpoint_steps()
        steps = sorted(s for s in saved if self.config.eval.wants_checkpoint(s))
        return [
            dataclasses.replace(model, path=str(model.run_folder / "checkpoints" / f"step-{s}"), step=s, final=False)
            for s in steps
        ]

    def _evaluate(self, model: EvaluatedModel, data: Stage, benchmark_data: Path | None, folder: Path) -> dict:
        """The sentiment judge and the suite (a checkpoint's suite only with eval.checkpoint_benchmarks)."""
        settings = self.config.eval
        metadata = model.metadata(self.config)
        summary: dict[str, Any] = {}
        if settings.sentiment is not None:
            summary["sentiment"] = sentiment_eval(
                self.config, self.base_path, model, data.folder, folder / "sentiment", metadata
            )
        if benchmark_data is not None and (model.final or settings.checkpoint_benchmarks):
            summary["benchmarks"] = self._benchmark_eval(model, benchmark_data, folder / "benchmarks", metadata)
        return summary

    def _benchmark_eval(self, model: EvaluatedModel, data_dir: Path, out: Path, metadata: dict) -> dict:
        from tokenpo.evals import evaluate
        from tokenpo.harness.vllm_env import server_backend

        settings = self.config.eval
        server = server_backend(settings.server) if settings.backend == "vllm-server" else None
        run = evaluate(
            model.path,
            suite=settings.suite,
            output_dir=out,
            data_dir=data_dir,
            limit=settings.limit,
            backend=settings.backend,
            batch_size=settings.batch_size,
            server=server,
            shards=settings.shards,
            apply_chat_template=settings.apply_chat_template,
            seed=settings.seed,
            metadata=metadata,
            gen_kwargs=settings.gen_kwargs,
            system_instruction=settings.system_instruction,
            fewshot_as_multiturn=settings.fewshot_as_multiturn,
        )
        return {"tasks": sorted(run.results["results"])}

    def _winrate_settings(self):
        """``eval.winrate``, or None when it is not set or its prompts need an ``eval.data_dir`` that is not a
        folder (skipped with a note, as the benchmarks are; ``when_unavailable: error`` stopped the run before)."""
        settings = self.config.eval.winrate
        if settings is None or not settings.needs_benchmarks:
            return settings
        data_dir = self.config.eval.data_dir
        if data_dir is None or not Path(data_dir).is_dir():
            self.result.notes.append(
                f"win rate skipped: its prompts ({settings.prompts}) are read from eval.data_dir, "
                + ("which is not set" if data_dir is None else f"and {data_dir} is not a folder")
            )
            return None
        return settings

    def _winrate_data(self) -> Path | None:
        return Path(self.config.eval.data_dir) if self.config.eval.data_dir is not None else None

    def _answers_stage(self, label: str) -> None:
        from tokenpo.harness.pipeline.winrate import write_model_answers

        model, stage = self.evaluated_model(label), self.answers_stage(label)
        self._timed(
            stage,
            f"answers of {label}",
            lambda: write_model_answers(self.winrate, self._winrate_data(), model.path, stage.folder),
        )

    def _winrate_stage(self, label: str) -> None:
        from tokenpo.harness.pipeline.winrate import judge_against_baseline

        baseline, stage = self.winrate_baseline(label), self.winrate_stage(label)
        candidate_answers, baseline_answers = self.answers_stage(label), self.answers_stage(baseline)
        for answers in (candidate_answers, baseline_answers):
            if not answers.done():
                raise HarnessError(f"{self.output}: {stage.name} needs {answers.name}, which has not finished")
        metadata = self.evaluated_model(label).metadata(self.config) | {
            "candidate": {"label": label, **candidate_answers.summary()},
            "baseline": {"label": baseline, **baseline_answers.summary()},
        }
        self._timed(
            stage,
            f"win rate of {label} against {baseline}",
            lambda: judge_against_baseline(
                self.winrate,
                self._winrate_data(),
                candidate_answers.folder,
                baseline_answers.folder,
                stage.folder,
                metadata,
            ),
        )

    def _report_stage(self, results: list[Path]) -> None:
        stage = self.report_stage()  # always rewritten (cheap); its marker tells a scheduler it is done
        with progress.task("leaderboard and report", unit="stage", kind=PlannedStage.parse(stage.name).kind):
            # The trackers hear of the evaluation once, not at every rewrite of an unchanged report.
            written = write_report(self.config, self.output, results, self.base_weights, not stage.done())
            self.result.leaderboard, self.result.report = written
            self.result.notes += winrate_notes(winrate_records(self.output))
            if not stage.done():
                stage.prepare()
                stage.finish({"results": [str(path) for path in results]})
        self.result.result_folders = results
        if self.stages is not None:
            self.stages.advance()


def check_inputs(config: RunConfig, source: str) -> None:
    """Files the configuration names must exist before anything runs (a missing one names its key)."""
    data = config.data
    from tokenpo.trainers.data.readers import data_format

    named = [("data.path", data.path)] + [(f"data.mixture[{i}].path", m.path) for i, m in enumerate(data.mixture or [])]
    for key, path in named:
        if path is not None and data_format(path) != "hub" and not Path(path).is_file():
            raise HarnessError(f"{source}: {key}: no such file: {path}")
    prompts = data.sentiment.prompts if data.sentiment is not None else "builtin"
    if prompts != "builtin" and not Path(prompts).is_file():
        raise HarnessError(f"{source}: data.sentiment.prompts: no such file: {prompts}")
    if (
        config.eval.data_dir is not None
        and config.eval.when_unavailable == "error"
        and not Path(config.eval.data_dir).is_dir()
    ):
        raise HarnessError(f"{source}: eval.data_dir: no such folder: {config.eval.data_dir}")
    winrate = config.eval.winrate
    if winrate is not None and winrate.prompts.endswith((".jsonl", ".gz")) and not Path(winrate.prompts).is_file():
        raise HarnessError(f"{source}: eval.winrate.prompts: no such file: {winrate.prompts}")
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


def _step_of(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))
