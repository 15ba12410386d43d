"""The model card (``README.md`` in the hub's format) of a trained model: YAML metadata (base model,
the base weights' origin when they are not the original ones, datasets, library, license, tags,
pipeline tag, model-index), then the method (and a note when the base weights were dequantised from
a quantisation), the evaluation against the baseline, the training configuration and outcome, how to
load it, versions and citations."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml
from huggingface_hub import ModelCard, ModelCardData

from tokenpo.cards.methods import DPO, method_text
from tokenpo.cards.scores import CardScores, data_notes, model_index, score_table
from tokenpo.cards.trained import TrainedModel
from tokenpo.core.weights import WeightsOrigin
from tokenpo.leaderboards.formatting import NORMALISATION, smoke_lines
from tokenpo.leaderboards.runs import HELD_OUT_PREFIX, TrainingRun, mask_weight_records

CARD = "README.md"
PICTURE = "token-picture.svg"
SOURCES = "card-sources.json"  # the evaluations a card was written from, so a push can rebuild it
TAG = "tokenpo-harness"  # every card of ours carries it: how a card of ours is told from one peft wrote
VERSIONS = ("tokenpo-harness", "transformers", "torch", "peft", "accelerate", "lm_eval", "huggingface_hub")
# The curves the card summarises, when the run logged them (TRL's names).
CURVES = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")


@dataclass(frozen=True)
class CardParts:
    """What a card is written from: the trained model, and what is known of it so far."""

    model: TrainedModel
    training: TrainingRun | None = None  # curves, token scores and health (None: not read)
    scores: CardScores | None = None  # its evaluation against the baseline (None: not evaluated)
    picture: str | None = None  # the token picture's file name beside the card
    repo_id: str | None = None  # where it is published (the load snippet and model-index name)
    adapter: bool = False  # the card of a LoRA adapter (loaded through peft) rather than a full model
    step: int | None = None  # a checkpoint's card: the step it was saved after


def build_card(parts: CardParts) -> ModelCard:
    """The card as a ``huggingface_hub.ModelCard`` (``str(card)`` is the README.md text)."""
    model = parts.model
    converted = _converted(model)
    evals = model_index(parts.scores) if parts.scores is not None else []
    tags = [TAG, model.method_name, "preference-optimization"]
    if model.method_name != "dpo":
        tags.append("token-level")
    if model.lora:
        tags.append("lora")
    data = ModelCardData(
        base_model=model.base_id,
        datasets=[model.data_id] if model.data_id else None,
        library_name="peft" if parts.adapter else "transformers",
        license=model.base_license,
        tags=tags,
        pipeline_tag="text-generation",
        model_name=parts.repo_id or model.name,
        eval_results=evals or None,
        # base_model stays the hub id (the model these weights stand for, and the hub's model tree); this
        # field says they were not its original weights. No base_model_relation "quantized": that would list
        # this float32 fine-tune among the base model's quantisations; the hub infers "finetune"/"adapter".
        base_weights=converted.as_record() if converted is not None else None,
    )
    sections = [_intro(parts), _evaluation(parts), _training(parts), _loading(parts), _versions(), _citations(model)]
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def write_card(folder: Path, parts: CardParts, picture_svg: str | None = None) -> Path:
    """``folder/README.md`` (and the token picture beside it when given); returns the card's path."""
    from tokenpo.core.files import write_atomic

    folder = Path(folder)
    if picture_svg is not None:
        write_atomic(folder / PICTURE, picture_svg)
        parts = CardParts(**{**parts.__dict__, "picture": PICTURE})
    return write_atomic(folder / CARD, str(build_card(parts)))


# --- sections --------------------------------------------------------------------------------------
def _intro(parts: CardParts) -> str:
    model, text = parts.model, method_text(parts.model.method_name)
    base = f"[{model.base_id}](https://huggingface.co/{model.base_id})" if model.base_id else f"`{model.base_spec}`"
    what = f"checkpoint after step {parts.step} of " if parts.step is not None else ""
    lines = [
        f"# {parts.repo_id or model.name}",
        "",
        f"A {what}{base} fine-tuned with **{text.title}** ({text.paper}, [paper]({text.url})) on "
        f"{_data_phrase(model)}, with tokenpo-harness.",
        "",
        text.summary,
    ]
    if model.method_name != "dpo":
        lines += ["", f"Its baseline is {DPO.title} ({DPO.paper}) on the same data, base model and settings."]
    converted = _converted(model)
    if converted is not None:
        lines += ["", _weights_note(model.base_id or model.base_spec, converted, parts.adapter)]
    return "\n".join(lines)


def _converted(model: TrainedModel) -> WeightsOrigin | None:
    """The base weights' origin when they are not the original weights (dequantised from a quantisation)."""
    return model.base_weights if model.base_weights is not None and model.base_weights.dequantised else None


def _weights_note(base: str, origin: WeightsOrigin, adapter: bool) -> str:
    note = (f"> **Base weights:** training started from {base}'s weights {origin.phrase()}. "
            "`base_model` names the model they stand for.")  # fmt: skip
    if adapter:
        note += (" Loaded through peft, this adapter is applied to the original weights, which it was not "
                 "trained against: expect outputs close to, but not the same as, the ones evaluated here.")  # fmt: skip
    return note


def _data_phrase(model: TrainedModel) -> str:
    if model.mixture:
        parts = [f"{m['drawn']} from `{m['label']}` (weight {m['weight']:g})" for m in model.mixture]
        return f"a mixture of {sum(m['drawn'] for m in model.mixture)} preference pairs: " + ", ".join(parts)
    if model.data_id:
        return f"the preference dataset [{model.data_id}](https://huggingface.co/datasets/{model.data_id})"
    if model.data_path is None:
        return "preference pairs"
    count = f"{model.pairs} " if model.pairs is not None else ""
    return f"{count}preference pairs from `{Path(model.data_path).name}`"


def _evaluation(parts: CardParts) -> str:
    if parts.scores is None:
        return "## Evaluation\n\nNot evaluated yet: `harness card RUN --results EVAL_DIR --baseline DPO_DIR` adds it."
    scores = parts.scores
    lines = ["## Evaluation", "", score_table(scores), ""]
    legend = (
        f"*raw*: the headline metric × 100 (a benchmark's through lm-evaluation-harness's task files and "
        f"metrics, a judge's as the judge computes it). "
        f"*score*: normalised as the Open LLM Leaderboard v2, {NORMALISATION} (clipped at 0), with its "
        f"{scores.level} bootstrap interval over the prompts (and over the training seeds, when several were "
        "evaluated together)."
    )
    if scores.baseline is not None:
        legend += (
            f" *Δ*: the score minus {scores.baseline.method}'s ({scores.baseline.model}) on the prompts both "
            f"answered, with its {scores.level} paired bootstrap interval; `*` marks an interval that excludes 0 "
            "with at least two training seeds on each side; `(1 seed)` marks an interval of one trained model's "
            "evaluation noise, which says nothing about the method (see the leaderboard's verdicts)."
        )
    lines.append(legend)
    smoke = smoke_lines(scores.board)
    if smoke:
        lines += ["", "Smoke checks (too few items to compare):", "", *[f"- {line}" for line in smoke]]
    notes = data_notes(scores)
    if notes:
        lines += ["", "Evaluation data:", "", *[f"- {note}" for note in notes]]
    if parts.picture:
        lines += ["", f"![Token scores of a few training pairs]({parts.picture})"]
    return "\n".join(lines)


def _training(parts: CardParts) -> str:
    model = parts.model
    settings = {"method": model.method, "training": model.training}
    lines = ["## Training", ""]
    if model.steps is not None:
        lines.append(f"{model.steps} optimiser steps, starting from `{model.base_spec}`.")
    elif parts.step is not None:
        lines.append(f"Checkpoint after step {parts.step}; the run had not finished when it was saved.")
    lines += ["", "The resolved configuration:", "", "```yaml", yaml.safe_dump(settings, sort_keys=False).rstrip(),
              "```"]  # fmt: skip
    if parts.training is not None:
        lines += _curves(parts.training)
    return "\n".join(lines)


def _curves(run: TrainingRun) -> list[str]:
    if run.metrics.empty or "step" not in run.metrics.columns:
        return []
    frame = run.metrics.drop_duplicates("step", keep="last").set_index("step").sort_index()
    record = mask_weight_records([run])[0]
    window = record["window"]
    held_out = HELD_OUT_PREFIX + "loss" in frame.columns and frame[HELD_OUT_PREFIX + "loss"].notna().any()
    rows = []
    for key in [k for k in CURVES if k in frame.columns] + [k for k in record["metrics"] if k not in CURVES]:
        values = frame[key].dropna() if key in frame.columns else None
        if values is None or values.empty:
            continue
        row = f"| `{key}` | {values.iloc[0]:.4g} | {values.iloc[-window:].mean():.4g} |"
        if held_out:
            evaluated = frame[HELD_OUT_PREFIX + key].dropna() if HELD_OUT_PREFIX + key in frame.columns else None
            row += f" {evaluated.iloc[-1]:.4g} |" if evaluated is not None and not evaluated.empty else " — |"
        rows.append(row)
    if not rows:
        return []
    health = run.health_status
    flags = "; ".join(f"{f.get('metric')}: {f.get('problem')}" for f in run.health or ())
    verdict = {"ok": "every training-health check passed", "flagged": f"**flagged** ({flags})"}.get(
        health, "not checked"
    )
    if held_out:
        step = int(frame[HELD_OUT_PREFIX + "loss"].dropna().index[-1])
        head = ["| metric | first | last | held-out pairs |", "|---|---:|---:|---:|"]
        about = f" and the held-out pairs' value at their last evaluation (step {step})"
    else:
        head, about = ["| metric | first | last |", "|---|---:|---:|"], ""
    return ["", f"Training curves (first logged step, and the mean of the last {window}){about}; health: {verdict}.",
            "", *head, *rows]  # fmt: skip


def _loading(parts: CardParts) -> str:
    where = parts.repo_id or "PATH_OR_REPO_ID"
    if parts.adapter:
        base = parts.model.base_id or parts.model.base_spec
        code = (
            "from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{where}")  # loads {base} and the adapter\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")'
        )
    else:
        code = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{where}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")'
        )
    return f"## How to load\n\n```python\n{code}\n```"


def _versions() -> str:
    found = []
    for package in VERSIONS:
        try:
            found.append(f"- {package} {version(package)}")
        except PackageNotFoundError:
            continue
    return "## Framework versions\n\nWhen this card was written:\n\n" + "\n".join(found)


def _citations(model: TrainedModel) -> str:
    texts = [method_text(model.method_name)]
    if model.method_name != "dpo":
        texts.append(DPO)
    blocks = "\n\n".join(text.bibtex for text in texts)
    return f"## Citation\n\n```bibtex\n{blocks}\n```"
