"""SparsePO's sentiment-control experiment, offline: build preference pairs from the base model's
own continuations of film-review openings, scored by the sentiment judge.

For each training prompt the base model samples ``k`` continuations; the judge gives each its
P(positive); the most positive becomes ``chosen`` and the least positive ``rejected``. Prompts
whose best and worst differ by less than ``min_margin`` give no pair, and are counted.

A continuation either ends (the model emitted an end-of-text before ``max_new_tokens``) or is cut
at the cap. Pairs record which (``chosen_truncated`` / ``rejected_truncated``), so tokenisation
appends no end-of-text the model never produced to a cut one.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tokenpo.core import progress
from tokenpo.core.files import write_atomic
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.pipeline.config import SentimentPairs


def load_prompts(spec: str) -> list[str]:
    """The built-in review openings, or one prompt per non-empty line of the file ``spec``."""
    if spec == "builtin":
        text = (resources.files("tokenpo.harness.pipeline") / "review_openings.txt").read_text(encoding="utf-8")
        source = "builtin"
    else:
        path = Path(spec)
        if not path.is_file():
            raise HarnessError(f"{spec}: data.sentiment.prompts: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            line = path.read_bytes()[: error.start].count(b"\n") + 1
            raise HarnessError(f"{spec}:{line}: prompt: undecodable bytes (not UTF-8)") from None
        source = spec
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise HarnessError(f"{source}: data.sentiment.prompts: no prompts")
    return prompts


def split_prompts(prompts: Sequence[str], settings: SentimentPairs) -> tuple[list[str], list[str]]:
    needed = settings.train_prompts + settings.eval_prompts
    if len(prompts) < needed:
        raise HarnessError(f"data.sentiment: {len(prompts)} prompts, but train_prompts + eval_prompts = {needed}")
    return list(prompts[: settings.train_prompts]), list(prompts[settings.train_prompts : needed])


def prompt_sets(settings: SentimentPairs) -> tuple[list[str], list[str]]:
    """Training and held-out prompts: openings of a review CSV, or the first lines of a prompt list."""
    if settings.prompts.lower().endswith(".csv"):
        train, held_out = review_openings(settings.prompts, settings.prompt_words)
        for name, have, want in (
            ("train_prompts", train, settings.train_prompts),
            ("eval_prompts", held_out, settings.eval_prompts),
        ):
            if len(have) < want:
                raise HarnessError(
                    f"{settings.prompts}: data.sentiment.{name}: {want} wanted, the file has {len(have)}"
                )
        return train[: settings.train_prompts], held_out[: settings.eval_prompts]
    return split_prompts(load_prompts(settings.prompts), settings)


_MARKUP = re.compile(r"<[^>]+>")


def review_openings(path: str, words: int) -> tuple[list[str], list[str]]:
    """The first ``words`` words of each review of an IMDB-style CSV (``text``, optional ``is_valid``).

    Reviews with ``is_valid`` true are held out (the evaluation openings); the others train, in file
    order. Without an ``is_valid`` column every review trains and none is held out by the file (the
    caller then fails unless it asks for none). HTML line breaks (``<br />``) count as spaces.
    """
    file = Path(path)
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "text" not in reader.fieldnames:
                raise HarnessError(f"{path}:1: text: the review CSV needs a 'text' column")
            train, held_out = [], []
            for record in reader:
                line = reader.line_num
                text = _MARKUP.sub(" ", record["text"] or "").split()
                if not text:
                    raise HarnessError(f"{path}:{line}: text: empty review")
                valid = (record.get("is_valid") or "false").strip().lower()
                if valid not in ("true", "false"):
                    raise HarnessError(f"{path}:{line}: is_valid: expected True or False, got {record['is_valid']!r}")
                (held_out if valid == "true" else train).append(" ".join(text[:words]))
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: undecodable bytes (not UTF-8): {error.reason}") from None
    return train, held_out


@dataclass(frozen=True)
class Continuation:
    """A sampled continuation's text (special tokens dropped) and whether it was cut at the token cap."""

    text: str
    truncated: bool  # True: ``max_new_tokens`` reached before any end-of-text; False: the model ended it


def end_of_text_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The token ids that end generation: the generation config's ``eos_token_id`` (an int or a list, as
    models ship it; Llama 3 lists several), else the tokenizer's end-of-text."""
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = tokenizer.eos_token_id
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if not ids:
        raise HarnessError("the model's generation config and its tokenizer name no end-of-text token")
    return ids


def split_continuation(new_tokens: Sequence[int], end_ids: Sequence[int]) -> tuple[list[int], bool]:
    """The content tokens of one generated row and whether it was cut (True) rather than ended.

    Content stops at the first end-of-text: what follows is padding (after a row ends, ``generate``
    fills it with the pad id, often the end-of-text itself) while the batch's other rows go on.
    A row with no end-of-text was cut at ``max_new_tokens``.
    """
    for position, token in enumerate(new_tokens):
        if token in end_ids:
            return list(new_tokens[:position]), False
    return list(new_tokens), True


@torch.no_grad()
def sample_continuations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    samples: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int = 0,
    batch_size: int = 16,
    seed: int = 0,
    description: str = "continuations sampled",
) -> list[list[Continuation]]:
    """``samples`` sampled continuations of each prompt (plain text continuation, no chat template),
    each marked ended or cut at ``max_new_tokens``.

    Reproducible: the generator is seeded per call, and prompts are batched in a fixed order.
    Reports the continuations generated as the progress task ``description``.
    """
    tokenizer.padding_side = "left"  # generation continues from the last real token of every row
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    expanded = [prompt for prompt in prompts for _ in range(samples)]
    # Generation stops on exactly the ids that mark a continuation as ended.
    end_ids = end_of_text_ids(model, tokenizer)
    continuations: list[Continuation] = []
    try:
        with progress.task(description, total=len(expanded), unit="text") as counted:
            for start in range(0, len(expanded), batch_size):
                batch = expanded[start : start + batch_size]
                inputs = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
                output = model.generate(
                    **inputs,
                    do_sample=True,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=1.0,
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=1,
                    eos_token_id=end_ids,
                    pad_token_id=tokenizer.pad_token_id,
                )
                for row in output[:, inputs["input_ids"].shape[1] :].tolist():
                    content, truncated = split_continuation(row, end_ids)
                    continuations.append(Continuation(tokenizer.decode(content, skip_special_tokens=True), truncated))
                counted.advance(len(batch))
    finally:
        torch.random.set_rng_state(generator_state)
        tokenizer.padding_side = "right"
    return [continuations[i * samples : (i + 1) * samples] for i in range(len(prompts))]


@dataclass(frozen=True)
class PairStats:
    prompts: int
    pairs: int
    below_margin: int
    mean_margin: float
    truncated: int  # continuations cut at the token cap, of all sampled (kept in pairs or not)


def build_pairs(
    prompts: Sequence[str],
    continuations: Sequence[Sequence[Continuation]],
    scores: Sequence[Sequence[float]],
    min_margin: float,
) -> tuple[list[dict], PairStats]:
    """Standard-format pairs (most vs least positive continuation, each with whether it was cut at the
    token cap) and what was kept."""
    pairs, margins, below = [], [], 0
    for prompt, sampled, values in zip(prompts, continuations, scores, strict=True):
        best = max(range(len(values)), key=values.__getitem__)
        worst = min(range(len(values)), key=values.__getitem__)
        chosen, rejected = sampled[best], sampled[worst]
        margin = values[best] - values[worst]
        if margin < min_margin or chosen.text == rejected.text or not chosen.text.strip() or not rejected.text.strip():
            below += 1
            continue
        margins.append(margin)
        pairs.append(
            {
                "prompt": prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "chosen_truncated": chosen.truncated,
                "rejected_truncated": rejected.truncated,
                "p_positive_chosen": values[best],
                "p_positive_rejected": values[worst],
            }
        )
    truncated = sum(item.truncated for sampled in continuations for item in sampled)
    stats = PairStats(len(prompts), len(pairs), below, sum(margins) / len(margins) if margins else 0.0, truncated)
    return pairs, stats


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
