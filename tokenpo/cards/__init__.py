"""Model cards of trained models (the hub's README.md format) and publishing them to the hub.

``write_run_card`` writes ``RUN/final/README.md`` (and the token picture beside it) from the run folder
and, once evaluated, its leaderboard row against the baseline; ``write_checkpoint_card`` writes the
cheap card of a checkpoint (training only). ``tokenpo.cards.publish`` uploads a run's model.

The cards read run folders and result files, never live objects, and import only the core and the
leaderboards: the harness writes them after a training (``harness train``, the pipeline's train stage)
and after an evaluation (the pipeline's report, ``harness card``); the training loop knows nothing of them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import yaml
from huggingface_hub.repocard import metadata_load

from tokenpo.cards.errors import CardError
from tokenpo.cards.picture import token_picture
from tokenpo.cards.render import CARD, PICTURE, SOURCES, TAG, CardParts, build_card, write_card
from tokenpo.cards.scores import CardScores, card_scores
from tokenpo.cards.trained import TrainedModel, read_trained
from tokenpo.core.files import write_atomic
from tokenpo.core.weights import WeightsOrigin
from tokenpo.leaderboards.runs import TrainingRun, load_run

__all__ = [
    "CARD",
    "PICTURE",
    "CardParts",
    "CardScores",
    "TrainedModel",
    "build_card",
    "card_scores",
    "has_card",
    "read_trained",
    "rebuild_parts",
    "write_checkpoint_card",
    "write_run_card",
]


def run_parts(run_dir: str | Path, scores: CardScores | None = None, repo_id: str | None = None, adapter: bool = False,
              base_weights: WeightsOrigin | None = None) -> tuple[CardParts, str | None]:  # fmt: skip
    """The parts of a run's card, and its token picture (SVG text; None without token scores);
    ``base_weights`` as :func:`read_trained` takes it."""
    model = read_trained(run_dir, base_weights)
    training = load_run(run_dir) if (Path(run_dir) / "metrics.jsonl").is_file() else None
    picture = (
        token_picture(training.token_scores, model.name, common_mask=bool(training.common_mask))
        if training is not None
        else None
    )
    return CardParts(model, training, scores, repo_id=repo_id, adapter=adapter), picture


def write_run_card(run_dir: str | Path, results: Sequence[str | Path] = (), baseline: Sequence[str | Path] = (),
                   repo_id: str | None = None, base_weights: WeightsOrigin | None = None) -> Path:  # fmt: skip
    """``RUN/final/README.md`` with the token picture beside it, and with the evaluation in ``results``
    against ``baseline`` (result folders or files) when given; returns the card's path. ``base_weights``:
    the base weights' origin when the run's config.yaml predates recording it. The sources are kept
    beside the card (``card-sources.json``) for ``harness push`` to rebuild it."""
    sources: dict[str, list[str] | dict[str, str]] = {"results": [str(Path(p).resolve()) for p in results],
                     "baseline": [str(Path(p).resolve()) for p in baseline]}  # fmt: skip
    if base_weights is not None:
        sources["base_weights"] = base_weights.as_record()
    scores = card_scores(sources["results"], sources["baseline"]) if results else None
    parts, picture = run_parts(run_dir, scores, repo_id, base_weights=base_weights)
    path = write_card(parts.model.final_dir, parts, picture)
    write_atomic(parts.model.final_dir / SOURCES, json.dumps(sources, indent=1) + "\n")
    return path


def rebuild_parts(
    run_dir: str | Path, repo_id: str | None = None, adapter: bool = False
) -> tuple[CardParts, str | None]:
    """The parts of the card last written for ``run_dir`` (its evaluation re-read from the sources it
    recorded), for ``repo_id`` and the model or adapter variant."""
    model = read_trained(run_dir)
    recorded = model.final_dir / SOURCES
    sources = json.loads(recorded.read_text()) if recorded.is_file() else {"results": [], "baseline": []}
    missing = [p for p in (*sources["results"], *sources["baseline"]) if not Path(p).exists()]
    if missing:
        raise CardError(f"{recorded}: results: {missing[0]} is gone; write the card again with harness card")
    scores = card_scores(sources["results"], sources["baseline"]) if sources["results"] else None
    told = sources.get("base_weights")
    return run_parts(run_dir, scores, repo_id, adapter, WeightsOrigin.from_record(told) if told else None)


def write_checkpoint_card(checkpoint: str | Path, run_dir: str | Path, step: int) -> Path:
    """A checkpoint's card: the method, configuration and curves up to ``step`` (no evaluation, no picture).

    It says what the run folder said when the checkpoint was saved, however much later it is written: the
    metrics rows after ``step``, the finished run's step count (DONE) and its health report are left out,
    so the card is the same whether it is written at the checkpoint or after the training."""
    model = dataclasses.replace(read_trained(run_dir), steps=None)
    return write_card(Path(checkpoint), CardParts(model, _training_until(run_dir, step), step=step))


def has_card(folder: str | Path) -> bool:
    """Whether ``folder`` holds a card of ours (peft saves a README.md of its own into a LoRA model's folder)."""
    path = Path(folder) / CARD
    if not path.is_file():
        return False
    try:
        metadata = metadata_load(path) or {}
    except (ValueError, yaml.YAMLError):  # a README.md whose front matter is not ours to read
        return False
    return TAG in (metadata.get("tags") or ())


def _training_until(run_dir: str | Path, step: int) -> TrainingRun | None:
    """The run's curves up to ``step`` (the rows a checkpoint saved after it saw), without token scores
    or health: neither is written before the run ends."""
    if not (Path(run_dir) / "metrics.jsonl").is_file():
        return None
    run = load_run(run_dir)
    metrics = run.metrics
    if "step" in metrics.columns:
        # A metric first logged after ``step`` was no column then.
        metrics = metrics[metrics["step"] <= step].dropna(axis="columns", how="all").reset_index(drop=True)
    return TrainingRun(run.path, run.name, run.method, metrics, common_mask=run.common_mask)
