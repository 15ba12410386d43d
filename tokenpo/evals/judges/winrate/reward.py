"""The reward-model judge: the answer with the higher reward wins.

The reward of ``(prompt, answer)`` is a sequence classifier's output on the pair's text:

- ``num_labels == 1`` (a Bradley–Terry reward model, as TRL's ``RewardTrainer`` trains them): the logit;
- ``num_labels == 2`` (a classifier of bad (0) vs good (1) answers): logit 1 − logit 0, the log-odds of
  "good", so that its order is the order of P(good);
- any other head is refused.

The text is the tokenizer's chat template applied to a two-turn conversation (user: prompt, assistant:
answer) when the tokenizer has one, since that is how chat reward models were trained; else
``prompt + "\\n\\n" + answer`` with the tokenizer's usual special tokens.

Scores are batched with right padding (every row keeps positions 0…n-1, so a row scores the same in
any batch, up to float rounding) and pooled as the model's own head pools (its last non-pad token);
float32, no gradients, evaluation mode: the same inputs give the same scores on every run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from tokenpo.core.hardware import default_device
from tokenpo.evals.errors import EvalError

PLAIN_SEPARATOR = "\n\n"


class RewardModelJudge:
    """Scores answers with the reward model at ``model_path``; :meth:`compare` says which answer wins."""

    name = "reward-model"

    def __init__(self, model_path: str | os.PathLike[str], batch_size: int = 8, device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if batch_size < 1:
            raise EvalError("reward model", "batch_size", f"expected 1 or more, got {batch_size}")
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self.device = device or default_device()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model = AutoModelForSequenceClassification.from_pretrained(self.model_path, dtype=torch.float32)
        self.num_labels = int(model.config.num_labels)
        if self.num_labels not in (1, 2):
            raise EvalError(
                self.model_path, "num_labels", f"expected a reward head of 1 or 2 labels, got {self.num_labels}"
            )
        if self.tokenizer.pad_token is None:
            # Padding is needed to batch; the eos token is the usual stand-in, and rows are masked anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token
            if self.tokenizer.pad_token is None:
                raise EvalError(self.model_path, "pad_token", "the tokenizer has neither a pad nor an eos token")
        self.tokenizer.padding_side = "right"
        # The head pools at the last token that is not the pad id; without a pad id it cannot batch.
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.device).eval()
        limit = self.tokenizer.model_max_length
        self.max_length: int | None = int(limit) if limit and limit < 1_000_000 else None  # huge = "unset"
        self.truncated = 0  # texts cut at max_length so far (the answer's end is lost: worth reporting)

    @property
    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format(self, prompt: str, answer: str) -> str:
        """The text scored for ``(prompt, answer)`` (see the module's doc)."""
        if self.uses_chat_template:
            conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            return self.tokenizer.apply_chat_template(conversation, tokenize=False)
        return prompt + PLAIN_SEPARATOR + answer

    def _encode(self, text: str) -> list[int]:
        # A chat template writes its special tokens itself; plain text gets the tokenizer's (CLS, BOS, …).
        ids = self.tokenizer(text, add_special_tokens=not self.uses_chat_template)["input_ids"]
        if self.max_length is not None and len(ids) > self.max_length:
            self.truncated += 1
            ids = ids[: self.max_length]
        return ids

    def scores(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """The reward of each ``(prompt, answer)``, in order."""
        import torch

        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        encoded = [self._encode(self.format(p, a)) for p, a in zip(prompts, answers, strict=True)]
        pad_id = self.tokenizer.pad_token_id
        rewards: list[float] = []
        with torch.no_grad():
            for start in range(0, len(encoded), self.batch_size):
                batch = encoded[start : start + self.batch_size]
                width = max(len(ids) for ids in batch)
                input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch], device=self.device)
                attention = torch.tensor(
                    [[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=self.device
                )
                logits = self.model(input_ids=input_ids, attention_mask=attention).logits.float()
                reward = logits[:, 0] if self.num_labels == 1 else logits[:, 1] - logits[:, 0]
                rewards.extend(reward.cpu().tolist())
        return rewards

    @staticmethod
    def outcome(candidate: str, baseline: str, candidate_reward: float, baseline_reward: float) -> float:
        """1 when the candidate's reward is higher, 0 when lower, 0.5 on an exact tie or identical texts.

        Identical texts tie by definition: scored in different batches their rewards could differ in the
        last bits of float rounding, which must not decide a win."""
        if candidate == baseline or candidate_reward == baseline_reward:
            return 0.5
        return 1.0 if candidate_reward > baseline_reward else 0.0

    def compare(self, prompt: str, candidate: str, baseline: str) -> float:
        """The candidate's outcome against the baseline on ``prompt``: 1, 0, or 0.5 on a tie."""
        return self.compare_many([prompt], [candidate], [baseline])[0][0]

    def compare_many(
        self, prompts: Sequence[str], candidates: Sequence[str], baselines: Sequence[str]
    ) -> list[tuple[float, float, float]]:
        """``(outcome, candidate reward, baseline reward)`` per prompt, scored in batches."""
        if not len(prompts) == len(candidates) == len(baselines):
            raise ValueError(f"{len(prompts)} prompts, {len(candidates)} candidates, {len(baselines)} baselines")
        candidate_rewards = self.scores(prompts, candidates)
        baseline_rewards = self.scores(prompts, baselines)
        return [
            (self.outcome(c, b, rc, rb), rc, rb)
            for c, b, rc, rb in zip(candidates, baselines, candidate_rewards, baseline_rewards, strict=True)
        ]

    def settings(self) -> dict[str, Any]:
        """How this judge scores, for a result's record."""
        template = getattr(self.tokenizer, "chat_template", None)
        return {
            "judge": self.name,
            "model": self.model_path,
            "format": (
                "chat template: user turn = prompt, assistant turn = answer"
                if template
                else "prompt + '\\n\\n' + answer, with the tokenizer's special tokens"
            ),
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
            "reward": "logit" if self.num_labels == 1 else "logit[1] - logit[0]",
            "num_labels": self.num_labels,
            "pooling": "the model's head: last non-pad token",
            "padding": "right",
            "dtype": "float32",
            "device": self.device,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "truncated_texts": self.truncated,
            "ties": "0.5 on equal rewards or identical answers",
        }
