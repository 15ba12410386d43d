"""Model cards of trained models (the hub's README.md format) and publishing them to the hub.

``write_run_card`` writes ``RUN/final/README.md`` (and the token picture beside it) from the run folder
and, once evaluated, its leaderboard row against the baseline; ``write_checkpoint_card`` writes the
cheap card of a checkpoint (training only). ``tokenpo.cards.publish`` uploads a run's model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenpo.cards.errors import CardError
from tokenpo.cards.picture import token_picture
from tokenpo.cards.render import CARD, PICTURE, SOURCES, CardParts, build_card, write_card
from tokenpo.cards.scores import CardScores, card_scores
from tokenpo.cards.trained import TrainedModel, read_trained
from tokenpo.core.files import write_atomic
from tokenpo.core.weights import WeightsOrigin

__all__ = [
    "CARD",
    "PICTURE",
    "CardParts",
    "CardScores",
    "TrainedModel",
    "build_card",
    "card_scores",
    "read_trained",
    "rebuild_parts",
    "write_checkpoint_card",
    "write_run_card",
]


def run_parts(run_dir: str | Path, scores: CardScores | None = None, repo_id: str | None = None, adapter: bool = False,
              base_weights: WeightsOrigin | None = None) -> tuple[CardParts, str | None]:  # fmt: skip
    """The parts of a run's card, and its token picture (SVG text; None without token scores);
    ``base_weights`` as :func:`read_trained` takes it."""
    from tokenpo.leaderboards.runs import load_run

    model = read_trained(run_dir, base_weights)
    training = load_run(run_dir) if (Path(run_dir) / "metrics.jsonl").is_file() else None
    picture = (token_picture(training.token_scores, model.name, common_mask=bool(training.common_mask))
               if training is not None else None)
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
    """A checkpoint's card: the method, configuration and curves so far (no evaluation, no picture)."""
    parts, _ = run_parts(run_dir)
    return write_card(Path(checkpoint), CardParts(parts.model, parts.training, step=step))
