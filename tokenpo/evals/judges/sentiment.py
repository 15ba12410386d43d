"""Sentiment judge: P(positive) per text, and the sequence KL of a policy to its reference.

Classifier: a 🤗 ``text-classification`` pipeline when a model is named (its positive label's
probability), else VADER (``vaderSentiment``), a rule-based classifier that ships its lexicon and
needs no download. VADER has no probability: we report (compound + 1) / 2, a monotone map of its
compound score onto [0, 1]; "positive" means compound ≥ 0.05, VADER's own threshold.

Sequence KL (SparsePO's reward–KL frontier): for a completion y of prompt x,

    KL(x, y) = Σ_t Σ_v π(v | x, y<t) · (log π(v | x, y<t) − log π_ref(v | x, y<t))

the full-vocabulary token KL of the policy π to the reference π_ref, summed over the completion's
tokens; with y sampled from π its mean over samples estimates KL(π(·|x) ‖ π_ref(·|x)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

VADER_POSITIVE = 0.05


def vader_p_positive(texts: Sequence[str]) -> list[float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [(analyzer.polarity_scores(text)["compound"] + 1.0) / 2.0 for text in texts]


def _positive_label(labels: Sequence[str]) -> str:
    for label in labels:
        if label.lower().startswith("pos"):
            return label
    if "LABEL_1" in labels and len(labels) == 2:
        return "LABEL_1"  # binary classifiers without names: 1 is positive by convention (e.g. SST-2)
    raise ValueError(f"cannot tell which label is positive among {list(labels)}")


def pipeline_p_positive(texts: Sequence[str], model: str, batch_size: int = 32, device: Any = None) -> list[float]:
    from transformers import pipeline

    classifier = pipeline("text-classification", model=model, top_k=None, device=device, truncation=True)
    outputs = classifier(list(texts), batch_size=batch_size)
    positive = _positive_label([entry["label"] for entry in outputs[0]])
    return [next(e["score"] for e in scores if e["label"] == positive) for scores in outputs]


def score_texts(texts: Sequence[str], model: str | None = None, batch_size: int = 32) -> list[float]:
    """P(positive) of each text: the classifier ``model`` when given, else VADER."""
    return pipeline_p_positive(texts, model, batch_size) if model else vader_p_positive(texts)


def is_positive(p_positive: float, model: str | None = None) -> bool:
    return p_positive >= ((VADER_POSITIVE + 1) / 2 if model is None else 0.5)


def sequence_kl(
    policy, reference, tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 8
) -> list[float]:
    """Σ over completion tokens of KL(π_policy ‖ π_reference) over the full vocabulary, per (prompt, completion)."""
    import torch

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    device = next(policy.parameters()).device
    values: list[float] = []
    for start in range(0, len(prompts), batch_size):
        rows, masks = [], []
        for prompt, completion in zip(
            prompts[start : start + batch_size], completions[start : start + batch_size], strict=True
        ):
            prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
            completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
            rows.append(prompt_ids + completion_ids)
            # position t predicts token t+1: mark the positions whose next token is a completion token
            masks.append([0] * (len(prompt_ids) - 1) + [1] * len(completion_ids) + [0])
        width = max(map(len, rows))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([m + [0] * (width - len(m)) for m in masks], device=device, dtype=torch.float32)
        with torch.no_grad():
            log_p = torch.log_softmax(policy(input_ids=ids, attention_mask=attention).logits.float(), dim=-1)
            log_q = torch.log_softmax(reference(input_ids=ids, attention_mask=attention).logits.float(), dim=-1)
        token_kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        values.extend((token_kl * mask).sum(-1).tolist())
    return values
