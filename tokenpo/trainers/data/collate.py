"""Batch tokenised pairs for one concatenated forward: chosen rows first, then rejected rows."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tokenpo.trainers.data.tokenize import TokenizedPair


def collate_pairs(pairs: Sequence[TokenizedPair], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``completion_mask``, each of shape (2B, L).

    Row ``i`` is pair ``i``'s prompt + chosen, row ``B + i`` its prompt + rejected.
    ``completion_mask`` is 1 exactly on completion tokens: masks, never comparisons with
    ``pad_token_id``, say what is padding, because many models pad with their EOS token.
    """
    sequences = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    return collate_sequences(sequences, pad_token_id)


def collate_sequences(sequences: Sequence[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (prompt ids, completion ids) rows: the same three tensors as :func:`collate_pairs`."""
    width = max(len(prompt) + len(completion) for prompt, completion in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    completion_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, (prompt, completion) in enumerate(sequences):
        length = len(prompt) + len(completion)
        input_ids[row, :length] = torch.tensor(prompt + completion, dtype=torch.long)
        attention_mask[row, :length] = 1
        completion_mask[row, len(prompt) : length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}
