"""SparsePO's learned mask head, as the official code builds it, for any ``transformers`` causal LM.

The head reads the frozen reference's hidden states of every layer (``output_hidden_states``);
which position's states serve a completion token is the caller's choice (``mask_position``).
Activation masks ("MaPO") are in :mod:`tokenpo.trainers.activations`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

HEAD_FILE = "mask_head.safetensors"


class MaskHead(nn.Module):
    """m(t) = Dropout(ReLU(Σ_ℓ a_ℓ·s_ℓ,t)), s_ℓ,t = Dropout(ReLU(w_ℓᵀ·LN(h_ℓ,t) + b_ℓ)).

    One LayerNorm shared by all layers; per layer a linear scorer (w_ℓ, b_ℓ); a bias-free mixer a
    (the official ``SimpleMaskAllLayers``). ``heads`` independent copies of scorers and mixer give
    m_u and m_d separately ("independent") or one mask for both ("common"); the LayerNorm is shared.
    Inputs are detached: no gradient reaches the reference.

    ``init``:
    - ``official``: what the official code ends up with — its mask modules live inside the
      policy's ``PreTrainedModel`` and are missing from the checkpoint, so ``from_pretrained``
      initialises them with the model's ``_init_weights``: scorer and mixer weights
      N(0, ``initializer_range``²), zero biases, LayerNorm (1, 0). The mixer then has weights of
      both signs, and about half the tokens start at exactly zero.
    - ``average`` (ours): scorers as ``nn.Linear(H, 1)`` initialises them, the mixer at 1/L (the
      layers' average), so a token's mask is zero only where every layer's score is and no head
      starts dead (ReLU passes no gradient to a mask that is zero everywhere).
    """

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        heads: int = 1,
        dropout: float = 0.01,
        init: Literal["official", "average"] = "official",
        initializer_range: float = 0.02,
    ):
        super().__init__()
        self.num_layers, self.hidden_size, self.heads = num_layers, hidden_size, heads
        self.norm = nn.LayerNorm(hidden_size)
        self.weight = nn.Parameter(torch.empty(heads, num_layers, hidden_size))
        self.bias = nn.Parameter(torch.empty(heads, num_layers))
        self.mixer = nn.Parameter(torch.empty(heads, num_layers))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters(init, initializer_range)

    @torch.no_grad()
    def reset_parameters(self, init: Literal["official", "average"], initializer_range: float) -> None:
        if init == "official":
            self.weight.normal_(0.0, initializer_range)
            self.bias.zero_()
            self.mixer.normal_(0.0, initializer_range)
        else:
            bound = 1 / math.sqrt(self.hidden_size)
            self.weight.uniform_(-bound, bound)
            self.bias.uniform_(-bound, bound)
            self.mixer.fill_(1 / self.num_layers)

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, K, H) states of each of ``num_layers`` layers → (heads, N, K) non-negative masks."""
        if len(hidden_states) != self.num_layers:
            raise ValueError(f"mask head expects {self.num_layers} layers of states, got {len(hidden_states)}")
        mixed = None
        for layer, states in enumerate(hidden_states):
            normed = self.norm(states.detach().to(self.weight.dtype))
            scores = torch.einsum("nkh,eh->enk", normed, self.weight[:, layer]) + self.bias[:, layer, None, None]
            term = self.dropout(torch.relu(scores)) * self.mixer[:, layer, None, None]
            mixed = term if mixed is None else mixed + term
        return self.dropout(torch.relu(mixed))

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """Weight decay on the scorer and mixer weights only; biases and the LayerNorm get none
        (the official optimiser groups, following ``transformers.Trainer``'s decay rule)."""
        return [
            {"params": [self.weight, self.mixer], "weight_decay": weight_decay},
            {"params": [self.bias, *self.norm.parameters()], "weight_decay": 0.0},
        ]

    def save(self, folder: str | Path) -> None:
        shape = {"num_layers": self.num_layers, "hidden_size": self.hidden_size, "heads": self.heads}
        tensors = {name: value.detach().cpu().contiguous() for name, value in self.state_dict().items()}
        save_file(tensors, str(Path(folder) / HEAD_FILE), metadata={"shape": json.dumps(shape)})

    def load(self, folder: str | Path) -> None:
        self.load_state_dict(load_file(str(Path(folder) / HEAD_FILE)))
