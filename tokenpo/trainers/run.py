"""``train()``: a training run in its folder — start, resume after a kill, or recognise it is done.

Run folder (docs/file-formats.md)::

    RUN/config.yaml            the resolved configuration
    RUN/metrics.jsonl          one row per optimiser step
    RUN/checkpoints/step-N/    model (HF format) + mask head + state/ (optimiser, scheduler, RNG)
                               + trainer_state.json (step, fingerprint) + anchors.json (TI-DPO)
    RUN/final/                 the final model (LoRA: merged into the base weights)
    RUN/token_scores.jsonl     token-level scores of a few training pairs
    RUN/health.json            training-health flags of the last steps (tokenpo.trainers.health)
    RUN/DONE                   written last: the run is complete

Every folder and file is written under a temporary name and renamed into place, so a killed run
leaves either the previous state or the new one. A run is identified by a fingerprint of its
configuration, model path and tokenised data: a folder holding a finished run with the same
fingerprint is returned as it is, one holding a different run is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoTokenizer, PreTrainedTokenizerBase, get_scheduler

from tokenpo.core import progress
from tokenpo.core.files import replace_directory, write_atomic
from tokenpo.core.fingerprint import fingerprint
from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import PreferenceExample, TokenizedPair, TruncationPolicy, tokenize_examples
from tokenpo.trainers.engine import PAIR_METRICS, Engine, Schedule, add_stats
from tokenpo.trainers.errors import TrainingError
from tokenpo.trainers.forward import disable_dropout, load_policy, load_reference
from tokenpo.trainers.health import HealthFlag, HealthMonitor
from tokenpo.trainers.methods import Method, build_method, trainable_modules

# Settings that change how a run is kept or shown, not what it computes.
_NOT_FINGERPRINTED = {"save_every", "keep_checkpoints", "resume", "report_to", "token_scores_examples"}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    final_dir: Path
    metrics_path: Path
    steps: int
    resumed_from: int | None = None  # the checkpoint step a resumed run continued from
    already_done: bool = False  # the folder already held this finished run
    health: tuple[HealthFlag, ...] = ()  # flags of the last steps; empty: the method learned


class RunFolder:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.final = self.root / "final"
        self.metrics = self.root / "metrics.jsonl"
        self.done = self.root / "DONE"
        self.token_scores = self.root / "token_scores.jsonl"
        self.config = self.root / "config.yaml"
        self.health = self.root / "health.json"

    def health_flags(self) -> tuple[HealthFlag, ...]:
        if not self.health.is_file():
            return ()
        return tuple(HealthFlag(**flag) for flag in json.loads(self.health.read_text())["flags"])

    def finished_fingerprint(self) -> str | None:
        if not self.done.is_file():
            return None
        return json.loads(self.done.read_text())["fingerprint"]

    def latest_checkpoint(self) -> Path | None:
        steps = sorted(self.checkpoint_steps())
        return self.checkpoints / f"step-{steps[-1]}" if steps else None

    def checkpoint_steps(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        return [
            int(p.name[5:])
            for p in self.checkpoints.iterdir()
            if p.name.startswith("step-") and p.name[5:].isdigit()
        ]

    def remove_partials(self) -> None:
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                for path in folder.glob(".partial-*"):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def fingerprint_of(config: TrainConfig, model_path: str, pairs: Sequence[TokenizedPair]) -> str:
    settings = dataclasses.asdict(config)
    for key in _NOT_FINGERPRINTED:
        settings["training"].pop(key)
    token_ids = ([pair.prompt_ids, pair.chosen_ids, pair.rejected_ids] for pair in pairs)
    return fingerprint({"config": settings, "model": str(model_path)}, token_ids)[:32]


def load_training_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def train(
    config: TrainConfig,
    model_path: str,
    examples: Sequence[PreferenceExample],
    output_dir: str | os.PathLike[str],
    config_record: Mapping | None = None,
) -> TrainResult:
    """Train ``model_path`` (a local folder or hub id) on ``examples`` into the run folder ``output_dir``.

    Resumes from the latest checkpoint when the folder holds an unfinished run of the same
    fingerprint (``training.resume: auto``); returns at once when it holds the finished run.
    ``config_record`` is what ``config.yaml`` records (default: ``config`` itself).
    Progress (reference log-probs, steps) and each training-health warning as it first appears are
    reported through :mod:`tokenpo.core.progress`, drawn however the caller chose.
    Raises :class:`TrainingError` on a non-finite loss or gradient, naming the step.
    """
    run = RunFolder(output_dir)
    tokenizer = load_training_tokenizer(model_path)
    t = config.training
    pairs = tokenize_examples(examples, tokenizer, TruncationPolicy(t.max_length, t.max_prompt_length))
    fingerprint = fingerprint_of(config, model_path, pairs)
    finished = run.finished_fingerprint()
    if finished is not None:
        if finished != fingerprint:
            raise TrainingError(
                f"{run.root}: holds a finished run of another configuration, model or data; "
                "choose another output folder"
            )
        steps = json.loads(run.done.read_text())["steps"]
        return TrainResult(run.root, run.final, run.metrics, steps, already_done=True, health=run.health_flags())
    accelerator = new_accelerator(t.mixed_precision, log_with=t.report_to or None, project_dir=str(run.root))
    resume_from = _resume_point(run, config, fingerprint, accelerator)
    if accelerator.is_main_process:
        run.root.mkdir(parents=True, exist_ok=True)
        run.checkpoints.mkdir(exist_ok=True)
        run.remove_partials()
        write_atomic(
            run.config, yaml.safe_dump(dict(config_record or dataclasses.asdict(config)), sort_keys=False)
        )
    accelerator.wait_for_everyone()
    trainer = Trainer(config, model_path, pairs, tokenizer, run, accelerator, fingerprint)
    return trainer.run(resume_from)


def new_accelerator(mixed_precision: str, **kwargs) -> Accelerator:
    """An Accelerator for one run. accelerate keeps its settings process-wide; a process that trains
    several runs (a pipeline) resets them, keeping the process group of a distributed launch."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, **kwargs)


def _resume_point(
    run: RunFolder, config: TrainConfig, fingerprint: str, accelerator: Accelerator
) -> Path | None:
    latest = run.latest_checkpoint()
    if latest is None:
        if config.training.resume == "never" and run.metrics.is_file():
            raise TrainingError(
                f"{run.root}: holds an unfinished run and training.resume is 'never'; "
                "choose another output folder"
            )
        return None
    if config.training.resume == "never":
        raise TrainingError(
            f"{run.root}: holds checkpoints of an unfinished run and training.resume is 'never'"
        )
    state = json.loads((latest / "trainer_state.json").read_text())
    if state["fingerprint"] != fingerprint:
        raise TrainingError(
            f"{run.root}: holds checkpoints of another configuration, model or data "
            f"({latest.name}); choose another output folder"
        )
    return latest


class Trainer:
    """Wires model, method, optimiser, schedule and run folder for one ``train()`` call."""

    def __init__(
        self,
        config: TrainConfig,
        model_path: str,
        pairs: Sequence[TokenizedPair],
        tokenizer: PreTrainedTokenizerBase,
        run: RunFolder,
        accelerator: Accelerator,
        fingerprint: str,
    ):
        self.config, self.model_path, self.pairs, self.tokenizer = config, model_path, pairs, tokenizer
        self.run_folder, self.accelerator, self.fingerprint = run, accelerator, fingerprint
        self.shown = accelerator.is_local_main_process  # one process draws progress
        self.schedule = Schedule.of(config, len(pairs), accelerator.num_processes)
        self.health = HealthMonitor(config.method.beta, self.schedule.total_steps)

    # ---------------------------------------------------------------- set-up

    def build(self, resume_from: Path | None) -> None:
        t, acc = self.config.training, self.accelerator
        set_seed(t.seed)
        policy = load_policy(self.model_path, t, weights_from=str(resume_from) if resume_from else None)
        heads = trainable_modules(self.config.method, policy.config)
        for head in heads.values():
            if resume_from is not None:
                head.load(resume_from)
            if t.disable_dropout:  # as TRL's disable_dropout_in_model reaches the official mask modules
                disable_dropout(head)
        reference = None
        if t.lora is None:  # every method reads the reference (once, or every step); LoRA disables adapters
            reference = acc.prepare_model(load_reference(self.model_path, t), evaluation_mode=True)
        groups = [
            {"params": [p for p in policy.parameters() if p.requires_grad], "weight_decay": t.weight_decay}
        ]
        for head in heads.values():
            method = self.config.method
            for group in head.parameter_groups(method.head_weight_decay):
                groups.append({**group, "lr": method.head_learning_rate or t.learning_rate})
        optimizer = adamw(groups, t.learning_rate)
        # Stepped by hand once per optimiser step: accelerate's wrapper would step it once per process.
        self.scheduler = get_scheduler(
            t.lr_scheduler,
            optimizer,
            num_warmup_steps=math.ceil(t.warmup_ratio * self.schedule.total_steps),
            num_training_steps=self.schedule.total_steps,
        )
        prepared = acc.prepare(policy, *heads.values(), optimizer)
        self.policy, self.optimizer = prepared[0], prepared[-1]
        self.heads = dict(zip(heads, prepared[1:-1], strict=True))
        # The method runs the prepared (e.g. DDP-wrapped) modules.
        self.method: Method = build_method(self.config.method, policy.config, modules=self.heads)
        acc.register_for_checkpointing(self.scheduler)
        # Model weights go to the Hugging Face files of the checkpoint; accelerate keeps the rest.
        acc.register_save_state_pre_hook(lambda models, weights, folder: weights.clear())
        acc.register_load_state_pre_hook(lambda models, folder: models.clear())
        self.engine = Engine(
            self.config,
            self.method,
            acc,
            self.policy,
            reference,
            self.pairs,
            self.tokenizer.pad_token_id,
            self.tokenizer.eos_token_id,
        )

    def precompute(self) -> None:
        """The engine's reference cache, filled once before the first step (when the method uses one)."""
        if not self.engine.needs_cache:
            return
        with progress.task("reference log-probs", total=len(self.pairs), unit="pair", shown=self.shown) as bar:
            self.engine.precompute(bar.advance)

    # ---------------------------------------------------------------- the loop

    def run(self, resume_from: Path | None) -> TrainResult:
        self.build(resume_from)
        start = 0
        if resume_from is not None:
            self.accelerator.load_state(str(resume_from / "state"))
            start = json.loads((resume_from / "trainer_state.json").read_text())["step"]
            if self.method.anchors is not None:
                self.method.anchors.load_state_dict(json.loads((resume_from / "anchors.json").read_text()))
        for row in self._keep_metrics_until(start):
            self.health.update(row)  # a resumed run's earlier steps count, but were reported before
        self.precompute()
        if self.config.training.report_to:
            self.accelerator.init_trackers(
                self.run_folder.root.name, config=_flat(dataclasses.asdict(self.config))
            )
        total = self.schedule.total_steps
        label = f"training {self.method_label}"
        with progress.task(label, total=total, unit="step", done=start, shown=self.shown) as bar:
            for step in range(start, total):
                row = self.step(step)
                self._log(row)
                if self.accelerator.is_main_process:
                    for flag in self.health.update(row):
                        progress.note(flag.line(f"{self.run_folder.root.name} ({self.method_label})"))
                bar.advance(loss=f"{row['loss']:.4f}", acc=f"{row['rewards/accuracies']:.2f}")
                every = self.config.training.save_every
                if every and (step + 1) % every == 0 and step + 1 < total:
                    self._save_checkpoint(step + 1)
        self._finish(total)
        return TrainResult(
            self.run_folder.root,
            self.run_folder.final,
            self.run_folder.metrics,
            total,
            resumed_from=start if resume_from is not None else None,
            health=tuple(self.health.final()),
        )

    @property
    def method_label(self) -> str:
        return self.config.method.label

    def step(self, step: int) -> dict:
        """One optimiser step (0-based ``step``); returns its metrics row."""
        acc, t = self.accelerator, self.config.training
        micro_batches = self.schedule.micro_batches(step, acc.process_index)
        self.engine.refresh_anchors(step, [i for batch in micro_batches for i in batch])
        stats: dict = {}
        nonfinite = torch.zeros((), device=acc.device)
        modules = [self.policy, *self.heads.values()]
        for position, indices in enumerate(micro_batches):
            last = position == len(micro_batches) - 1
            with _no_sync_unless(last, acc, modules):
                out, tensors = self.engine.micro_step(indices)
                loss = out.result.losses.mean()
                nonfinite += (~torch.isfinite(loss.detach())).float()
                acc.backward(loss / len(micro_batches))
            add_stats(stats, self.engine.pair_stats(out, tensors))
        learning_rate = self.scheduler.get_last_lr()[0]
        if acc.reduce(nonfinite, reduction="sum").item() > 0:
            raise TrainingError(
                f"step {step + 1}: the loss is not finite; stopped before updating the weights "
                f"(earlier checkpoints are kept)"
            )
        parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
        grad_norm = acc.clip_grad_norm_(
            parameters, t.max_grad_norm if t.max_grad_norm is not None else math.inf
        )
        grad_norm = float(grad_norm)
        if not math.isfinite(grad_norm):
            raise TrainingError(
                f"step {step + 1}: the gradient norm is not finite ({grad_norm}); stopped before "
                "updating the weights (earlier checkpoints are kept)"
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {
            "step": step + 1,
            "epoch": round(self.schedule.epoch(step + 1), 6),
            **self._reduce(stats),
            "grad_norm": grad_norm,
            "learning_rate": learning_rate,
        }

    def _reduce(self, stats: dict) -> dict[str, float]:
        keys = sorted(stats)
        values = torch.stack([torch.stack([stats[k][0].float(), stats[k][1].float()]) for k in keys])
        values = self.accelerator.reduce(values.to(self.accelerator.device), reduction="sum")
        result = {
            k: float(v[0] / v[1]) if v[1] > 0 else float("nan")
            for k, v in zip(keys, values.tolist(), strict=True)
        }
        extra = {k: result[k] for k in keys if k not in PAIR_METRICS}
        return {**{k: result[k] for k in PAIR_METRICS}, **extra}

    # ---------------------------------------------------------------- outputs

    def _keep_metrics_until(self, step: int) -> list[dict]:
        """A resumed run redoes the steps after its checkpoint: drop their rows (and any torn last line).
        Returns the rows kept."""
        if not self.accelerator.is_main_process or not self.run_folder.metrics.is_file():
            return []
        kept, rows = [], []
        for line in self.run_folder.metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", math.inf) <= step:
                kept.append(line + "\n")
                rows.append(row)
        write_atomic(self.run_folder.metrics, "".join(kept))
        return rows

    def _log(self, row: dict) -> None:
        if self.accelerator.is_main_process:
            with self.run_folder.metrics.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        if self.config.training.report_to:
            self.accelerator.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def _save_model(self, folder: Path, merge_lora: bool = False) -> None:
        """The policy (HF format), tokenizer and mask head into ``folder``; collective across processes."""
        acc = self.accelerator
        state = acc.get_state_dict(self.policy)
        if acc.is_main_process:
            model = acc.unwrap_model(self.policy)
            if merge_lora and self.config.training.lora is not None:
                model = model.merge_and_unload()
                state = None
            model.save_pretrained(folder, state_dict=state, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
            for head in self.heads.values():
                acc.unwrap_model(head).save(folder)

    def _save_checkpoint(self, step: int) -> None:
        acc, run = self.accelerator, self.run_folder
        partial = run.checkpoints / f".partial-step-{step}"
        if acc.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        acc.wait_for_everyone()
        self._save_model(partial)
        acc.save_state(str(partial / "state"))
        if acc.is_main_process:
            if self.method.anchors is not None:
                (partial / "anchors.json").write_text(json.dumps(self.method.anchors.state_dict()))
            state = {"step": step, "fingerprint": self.fingerprint, "method": self.method_label}
            (partial / "trainer_state.json").write_text(json.dumps(state, indent=1))
            replace_directory(partial, run.checkpoints / f"step-{step}")
            keep = self.config.training.keep_checkpoints
            if keep is not None:
                for old in sorted(run.checkpoint_steps())[:-keep]:
                    shutil.rmtree(run.checkpoints / f"step-{old}", ignore_errors=True)
        acc.wait_for_everyone()

    def _finish(self, steps: int) -> None:
        acc, run = self.accelerator, self.run_folder
        rows = self._token_scores() if acc.is_main_process else []
        partial = run.root / ".partial-final"
        if acc.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
        acc.wait_for_everyone()
        self._save_model(partial, merge_lora=True)
        if acc.is_main_process:
            replace_directory(partial, run.final)
            write_atomic(run.token_scores, "".join(json.dumps(row) + "\n" for row in rows))
            flags = [flag.as_dict() for flag in self.health.final()]
            write_atomic(run.health, json.dumps({"flags": flags, "steps": steps}, indent=1) + "\n")
            write_atomic(
                run.done,
                json.dumps(
                    {"fingerprint": self.fingerprint, "steps": steps, "method": self.method_label}, indent=1
                ),
            )
        if self.config.training.report_to:
            acc.end_training()
        acc.wait_for_everyone()

    def _token_scores(self) -> list[dict]:
        """Token-level scores of the first few training pairs under the final policy."""
        count = min(self.config.training.token_scores_examples, len(self.pairs))
        if count == 0:
            return []
        policy = self.accelerator.unwrap_model(self.policy)
        heads = [self.accelerator.unwrap_model(h) for h in self.heads.values()]
        for module in (policy, *heads):
            module.eval()
        try:
            with torch.set_grad_enabled(self.method.needs.attribution == "policy"):
                out, tensors = self.engine.micro_step(list(range(count)), policy=policy)
        finally:
            for module in (policy, *heads):
                module.train()
        mask = tensors.mask.bool()
        targets = tensors.targets
        rows = []
        for row in range(2 * count):
            ids = targets[row][mask[row]].tolist()
            rows.append(
                {
                    "example": row % count,
                    "side": "chosen" if row < count else "rejected",
                    "method": self.method_label,
                    "tokens": self.tokenizer.convert_ids_to_tokens(ids),
                    "scores": {
                        kind: [round(v, 6) for v in values[row][mask[row]].detach().float().tolist()]
                        for kind, values in out.token_scores.items()
                    },
                }
            )
        return rows


def adamw(groups: list[dict], learning_rate: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (TRL's default optimiser too): one pass per parameter instead of
    a chain of per-tensor ops (SmolLM2-135M, bf16, CPU: a DPO step went from 3.77 s to 3.50 s; see
    docs/performance.md). Devices without a fused kernel get the multi-tensor implementation."""
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
    except RuntimeError:
        return torch.optim.AdamW(groups, lr=learning_rate, foreach=True)


def _no_sync_unless(sync: bool, accelerator: Accelerator, modules) -> contextlib.ExitStack:
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step."""
    stack = contextlib.ExitStack()
    if not sync:
        for module in modules:
            stack.enter_context(accelerator.no_sync(module))
    return stack


def _flat(tree: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat
