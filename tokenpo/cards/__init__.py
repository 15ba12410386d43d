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


def run_parts(run_dir: str | Path, scores: CardScores | None = None, repo_id: str | None = None,
              adapter: bool = False) -> tuple[CardParts, str | None]:  # fmt: skip
    """The parts of a run's card, and its token picture (SVG text; None without token scores)."""
    from tokenpo.leaderboards.runs import load_run

    model = read_trained(run_dir)
    training = load_run(run_dir) if (Path(run_dir) / "metrics.jsonl").is_file() else None
    picture = token_picture(training.token_scores, model.name) if training is not None else None
    return CardParts(model, training, scores, repo_id=repo_id, adapter=adapter), picture


def write_run_card(run_dir: str | Path, results: Sequence[str | Path] = (), baseline: Sequence[str | Path] = (),
                   repo_id: str | None = None) -> Path:  # fmt: skip
    """``RUN/final/README.md`` with the token picture beside it, and with the evaluation in ``results``
    against ``baseline`` (result folders or files) when given; returns the card's path. The sources are
    kept beside the card (``card-sources.json``) for ``harness push`` to rebuild it."""
    sources = {"results": [str(Path(p).resolve()) for p in results],
               "baseline": [str(Path(p).resolve()) for p in baseline]}  # fmt: skip
    scores = card_scores(sources["results"], sources["baseline"]) if results else None
    parts, picture = run_parts(run_dir, scores, repo_id)
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
    return run_parts(run_dir, scores, repo_id, adapter)


def write_checkpoint_card(checkpoint: str | Path, run_dir: str | Path, step: int) -> Path:
    """A checkpoint's card: the method, configuration and curves so far (no evaluation, no picture)."""
    parts, _ = run_parts(run_dir)
    return write_card(Path(checkpoint), CardParts(parts.model, parts.training, step=step))
