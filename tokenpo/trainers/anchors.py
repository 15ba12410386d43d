"""TI-DPO's anchor completions: sampled from the policy, kept per example, refreshed every k steps.

On every ``every``-th optimiser step the anchors of that step's examples are (re)sampled from the
current policy, and their reference log-probabilities are computed once. Between refreshes an
example reuses its stored anchor; an example not yet seen on a refresh step has none, and its
triplet term is zero. ``every = 1`` is the paper: a fresh anchor for every pair at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Anchor:
    completion_ids: list[int]
    reference_logps: list[float]  # one per completion token
    step: int  # the optimiser step whose policy sampled it


class AnchorPool:
    """Sampling settings default to the released TI-DPO code's: top-k 50, top-p 0.95, temperature 0.8."""

    def __init__(self, every: int, max_new_tokens: int, temperature: float, top_k: int = 50, top_p: float = 0.95):
        self.every, self.max_new_tokens, self.temperature = every, max_new_tokens, temperature
        self.top_k, self.top_p = top_k, top_p
        self.anchors: dict[int, Anchor] = {}

    def due(self, step: int) -> bool:
        """Whether the anchors of ``step``'s examples are resampled (steps count from 0)."""
        return step % self.every == 0

    @torch.no_grad()
    def sample(self, policy: nn.Module, prompts: list[list[int]], pad_id: int, eos_id: int | None) -> list[list[int]]:
        """One sampled completion per prompt, cut after its first EOS (kept, as in the data)."""
        width = max(len(prompt) for prompt in prompts)
        device = next(policy.parameters()).device
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
        attention = torch.zeros_like(input_ids)
        for row, prompt in enumerate(prompts):  # left padding: generation continues at the right end
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, device=device)
            attention[row, width - len(prompt) :] = 1
        was_training = policy.training
        policy.eval()
        try:
            output = policy.generate(
                input_ids=input_ids,
                attention_mask=attention,
                do_sample=True,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=eos_id,
                use_cache=True,
            )
        finally:
            policy.train(was_training)
        completions = []
        for row in output[:, width:].tolist():
            if eos_id is not None and eos_id in row:
                row = row[: row.index(eos_id) + 1]
            completions.append(row or [eos_id if eos_id is not None else pad_id])
        return completions

    def store(self, indices: list[int], completions: list[list[int]], reference_logps: list[list[float]], step: int):
        for index, completion, logps in zip(indices, completions, reference_logps, strict=True):
            self.anchors[index] = Anchor(completion, logps, step)

    def state_dict(self) -> dict:
        return {index: vars(anchor) for index, anchor in self.anchors.items()}

    def load_state_dict(self, state: dict) -> None:
        self.anchors = {int(index): Anchor(**anchor) for index, anchor in state.items()}
