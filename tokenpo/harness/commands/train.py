"""``harness train --config FILE [key=value ...]``: one training run, from YAML to a run folder.

The YAML holds the model spec, the data, the output folder, the method and the training settings;
``key=value`` overrides (dotted paths: ``method.beta=0.2``) apply on top. The command resolves the
model, loads and validates the data, and hands both to :func:`trainers.train`; then it writes the model
cards of the run's checkpoints and final model (:func:`tokenpo.harness.pipeline.work.train_with_cards`).
Run it under ``accelerate launch -m tokenpo train ...`` for several processes or GPUs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tokenpo.core.config import field_error, load_config, to_mapping
from tokenpo.core.run_layout import MIXTURE_RECORD
from tokenpo.harness.models import DEFAULT_MODEL, resolve_model
from tokenpo.harness.pipeline.config import DataConfig
from tokenpo.harness.pipeline.pairs import held_out_examples, read_pairs
from tokenpo.harness.pipeline.work import train_with_cards
from tokenpo.trainers import TrainConfig
from tokenpo.trainers.config import DPOConfig, MethodConfig, TrainingConfig


@dataclass
class TrainJob:
    """The whole of ``harness train``'s YAML."""

    data: DataConfig = field(metadata={"help": "the preference data (path, not sentiment)"})
    output_dir: str = field(
        metadata={"help": "the run folder; running again into it resumes the run (training.resume) or finds it done"}
    )
    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "the starting model: a built-in name, a model folder or a hub id"}
    )
    method: MethodConfig = field(
        default_factory=DPOConfig, metadata={"help": "the method (name: dpo, tdpo, sparsepo or tidpo) and its keys"}
    )
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"help": "the training settings"})

    def __post_init__(self) -> None:
        if self.data.sentiment is not None:
            raise field_error("data.sentiment", "sentiment pairs are built by `harness run`; give data.path here")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model with DPO, TDPO, SparsePO or TI-DPO",
        description="Train with the YAML configuration FILE plus key=value overrides (e.g. method.beta=0.2).",
    )
    parser.add_argument("--config", help="YAML file: model, data, output_dir, method, training")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a key, e.g. training.max_steps=10")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    job = load_config(TrainJob, args.config, args.overrides)
    model_path = resolve_model(job.model)
    output = Path(job.output_dir)
    read = read_pairs(job.data, output / "rejects.jsonl")
    examples, held_out = held_out_examples(job.data, read.examples)
    result = train_with_cards(
        TrainConfig(job.method, job.training),
        str(model_path),
        examples,
        output,
        config_record=to_mapping(job) | ({MIXTURE_RECORD: read.mixture} if read.mixture is not None else {}),
        eval_examples=held_out,
    )
    if result.already_done:
        print(f"{output}: already holds this finished run ({result.steps} steps); nothing to do")
    else:
        resumed = f", resumed from step {result.resumed_from}" if result.resumed_from is not None else ""
        print(f"trained {result.steps} steps{resumed}")
    print(
        f"run folder:  {result.run_dir}\nfinal model: {result.final_dir}\nmetrics:     {result.metrics_path}",
        file=sys.stdout,
    )
    for line in top_token_lines(result.run_dir / "token_scores.jsonl"):
        print(line)
    return 0


def top_token_lines(path: Path, kinds: tuple[str, ...] = ("mask_u", "mask_d", "weight"), count: int = 8) -> list[str]:
    """The tokens with the highest mask or weight over the pairs in token_scores.jsonl, per kind and side."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    lines = []
    for kind in kinds:
        for side in ("chosen", "rejected"):
            scored = [
                (value, token)
                for row in rows
                if row["side"] == side and kind in row["scores"]
                for token, value in zip(row["tokens"], row["scores"][kind], strict=True)
            ]
            if scored:
                top = sorted(scored, key=lambda item: -item[0])[:count]
                lines.append(f"highest {kind} ({side}): " + ", ".join(f"{token!r} {value:.3g}" for value, token in top))
    return lines
