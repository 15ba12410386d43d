"""The training loop: build a run's models and optimiser, then step, log and checkpoint to the end.

One optimiser step, top-down (:meth:`Trainer.step`): the step's examples on this process
(:class:`Schedule`) → TI-DPO's anchors when due → per micro-batch: the forwards and the method's
loss (:meth:`tokenpo.trainers.engine.Engine.micro_step`), backward → stop on a non-finite loss →
clip → optimiser and scheduler step → the metrics row, summed over micro-batches and processes.
Data order is a seeded permutation per epoch, so a step's examples follow from its number alone and
a resumed run sees the same batches. Where the files go is :mod:`tokenpo.trainers.runfolder`'s; the
model cards of the checkpoints and the final model are the harness's, written after the training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import PreTrainedTokenizerBase, get_scheduler

from tokenpo.core import progress
from tokenpo.core.run_layout import ADAPTER
from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import TokenizedPair
from tokenpo.trainers.engine import Engine, add_stats, reduce_stats
from tokenpo.trainers.errors import TrainingError
from tokenpo.trainers.evaluation import evaluate_pairs
from tokenpo.trainers.forward import disable_dropout, load_policy, load_reference
from tokenpo.trainers.health import HealthContext, HealthMonitor, HealthReport
from tokenpo.trainers.methods import Method, build_method, trainable_modules
from tokenpo.trainers.runfolder import RunFolder, TrainResult, checkpoint_state


@dataclass(frozen=True)
class Schedule:
    """Which examples each optimiser step uses, on each process and micro-batch."""

    examples: int
    micro_batch: int
    processes: int
    accumulation: int
    seed: int
    total_steps: int

    @classmethod
    def of(cls, config: TrainConfig, examples: int, processes: int) -> Schedule:
        t = config.training
        global_batch = t.per_device_batch_size * processes * t.gradient_accumulation_steps
        if examples < global_batch:
            raise TrainingError(
                f"training data: {examples} pairs, fewer than one global batch of {global_batch} "
                f"(per_device_batch_size × processes × gradient_accumulation_steps)"
            )
        steps_per_epoch = examples // global_batch
        total = t.max_steps if t.max_steps is not None else max(1, math.ceil(t.epochs * steps_per_epoch))
        return cls(examples, t.per_device_batch_size, processes, t.gradient_accumulation_steps, t.seed, total)

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.processes * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.examples // self.global_batch

    def epoch(self, steps_done: int) -> float:
        return steps_done / self.steps_per_epoch

    def step_examples(self, step: int) -> list[int]:
        """The global batch of 0-based ``step``: a slice of its epoch's seeded permutation."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = torch.randperm(self.examples, generator=torch.Generator().manual_seed(self.seed + epoch))
        return order[position * self.global_batch : (position + 1) * self.global_batch].tolist()

    def micro_batches(self, step: int, process: int) -> list[list[int]]:
        batch = self.step_examples(step)
        return [
            batch[(a * self.processes + process) * self.micro_batch :][: self.micro_batch]
            for a in range(self.accumulation)
        ]


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
        eval_pairs: Sequence[TokenizedPair] = (),
    ):
        self.config, self.model_path, self.pairs, self.tokenizer = config, model_path, pairs, tokenizer
        self.eval_pairs = eval_pairs
        self.run_folder, self.accelerator, self.fingerprint = run, accelerator, fingerprint
        self.shown = accelerator.is_local_main_process  # one process draws progress
        self.schedule = Schedule.of(config, len(pairs), accelerator.num_processes)
        self.health = HealthMonitor(HealthContext.of(config.method, self.schedule.total_steps, len(pairs)))

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
        groups = [{"params": [p for p in policy.parameters() if p.requires_grad], "weight_decay": t.weight_decay}]
        for head in heads.values():
            method = self.config.method
            for group in head.parameter_groups(method.head_weight_decay):
                rate = t.learning_rate if method.head_learning_rate is None else method.head_learning_rate
                groups.append({**group, "lr": rate})
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
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        self.engine = Engine(self.config, self.method, acc, self.policy, reference, self.pairs, pad, eos)
        # The held-out pairs get an engine of their own: its own reference cache, and no anchors (TI-DPO's
        # are sampled for training pairs, by their index).
        self.eval_engine = None
        if self.eval_pairs:
            self.eval_engine = Engine(
                self.config, self.method, acc, self.policy, reference, self.eval_pairs, pad, eos, anchored=False
            )

    def precompute(self) -> None:
        """The engines' reference caches, filled once before the first step (when the method uses one)."""
        if not self.engine.needs_cache:
            return
        engines = [("reference log-probs", self.engine), ("reference log-probs (held-out)", self.eval_engine)]
        for label, engine in engines:
            if engine is not None:
                with progress.task(label, total=len(engine.pairs), unit="pair", shown=self.shown) as bar:
                    engine.precompute(bar.advance)

    # ---------------------------------------------------------------- the loop

    def run(self, resume_from: Path | None) -> TrainResult:
        self.build(resume_from)
        start = 0
        if resume_from is not None:
            self.accelerator.load_state(str(resume_from / "state"))
            start = checkpoint_state(resume_from)["step"]
            if self.method.anchors is not None:
                self.method.anchors.load_state_dict(json.loads((resume_from / "anchors.json").read_text()))
        if self.accelerator.is_main_process:
            for row in self.run_folder.keep_metrics_until(start):
                self.health.update(row)  # a resumed run's earlier steps count, but were reported before
        self.precompute()
        if self.config.training.report_to:
            self.accelerator.init_trackers(self.run_folder.root.name, config=_flat(dataclasses.asdict(self.config)))
        total = self.schedule.total_steps
        label = f"training {self.method_label}"
        with progress.task(label, total=total, unit="step", done=start, shown=self.shown) as bar:
            for step in range(start, total):
                row = self.step(step)
                if self._evaluates_after(step + 1):
                    row.update(self.evaluate())
                self._log(row)
                if self.accelerator.is_main_process:
                    for flag in self.health.update(row):
                        progress.note(flag.line(f"{self.run_folder.root.name} ({self.method_label})"))
                bar.advance(loss=f"{row['loss']:.4f}", acc=f"{row['rewards/accuracies']:.2f}")
                every = self.config.training.save_every
                if every and (step + 1) % every == 0 and step + 1 < total:
                    self._save_checkpoint(step + 1)
        health = self.health.final(self._anchored_pairs())
        self._finish(total, health)
        return TrainResult(
            self.run_folder.root,
            self.run_folder.final,
            self.run_folder.metrics,
            total,
            resumed_from=start if resume_from is not None else None,
            report=health,
        )

    def _evaluates_after(self, steps: int) -> bool:
        """Whether the held-out pairs are evaluated after ``steps`` steps: every ``eval_steps``, and the last."""
        every = self.config.training.eval_steps
        return self.eval_engine is not None and (
            steps == self.schedule.total_steps or bool(every and steps % every == 0)
        )

    def evaluate(self) -> dict[str, float]:
        """The held-out pairs under the current policy: the ``eval_`` metrics (:mod:`tokenpo.trainers.evaluation`)."""
        modules = [self.policy, *self.heads.values()]
        return evaluate_pairs(self.eval_engine, modules, self.config.training.per_device_batch_size)

    def _anchored_pairs(self) -> list[int] | None:
        """TI-DPO: the training pairs that ever had an anchor, the keys of its pool (it keeps each pair's
        latest; a resumed run restored it from anchors.json); None without anchors."""
        pool = self.method.anchors
        return None if pool is None else list(pool.anchors)

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
        grad_norm = acc.clip_grad_norm_(parameters, t.max_grad_norm if t.max_grad_norm is not None else math.inf)
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
            **reduce_stats(stats, acc),
            "grad_norm": grad_norm,
            "learning_rate": learning_rate,
        }

    # ---------------------------------------------------------------- outputs

    def _log(self, row: dict) -> None:
        if self.accelerator.is_main_process:
            self.run_folder.append_metrics(row)
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
        partial = run.partial_checkpoint(step)
        if acc.is_main_process:
            run.start_partial(partial)
        acc.wait_for_everyone()
        self._save_model(partial)
        if not self.config.training.save_only_model:
            acc.save_state(str(partial / "state"))
        if acc.is_main_process:
            if self.method.anchors is not None:
                (partial / "anchors.json").write_text(json.dumps(self.method.anchors.state_dict()))
            state = {"step": step, "fingerprint": self.fingerprint, "method": self.method_label}
            (partial / "trainer_state.json").write_text(json.dumps(state, indent=1))
            run.commit_checkpoint(partial, step, self.config.training.keep_checkpoints)
        acc.wait_for_everyone()

    def _finish(self, steps: int, health: HealthReport) -> None:
        acc, run = self.accelerator, self.run_folder
        rows = self._token_scores() if acc.is_main_process else []
        partial = run.partial_final
        if acc.is_main_process:
            run.start_partial(partial)
        acc.wait_for_everyone()
        if self.config.training.lora is not None:  # the adapter too, to publish it (harness push --adapter)
            self._save_model(partial / ADAPTER)
        self._save_model(partial, merge_lora=True)
        if acc.is_main_process:
            run.commit_final(
                partial,
                rows,
                health=health.as_dict(),
                done={"fingerprint": self.fingerprint, "steps": steps, "method": self.method_label},
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
