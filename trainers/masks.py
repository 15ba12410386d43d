"""SparsePO's token masks: activation-based ("MaPO") and the learned mask head.

Both read the frozen reference at the position of each completion token (the token's own
representation) and work on any ``transformers`` causal LM: activations are found through the
model's list of decoder blocks, hidden states through ``output_hidden_states``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainers.forward import transformer_layers

# Submodule names of the MLP and attention blocks across architectures (Llama, Mistral, Qwen,
# Gemma: mlp/self_attn; GPT-2: mlp/attn; GPT-NeoX: mlp/attention; Falcon, BLOOM: self_attention).
_SUBMODULES = {
    "mlp": ("mlp", "feed_forward", "ffn"),
    "attention": ("self_attn", "attn", "attention", "self_attention"),
}
HEAD_FILE = "mask_head.safetensors"


def _first_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _hook_modules(model: nn.Module, hooks: Sequence[str], layers: Sequence[int] | None) -> list[nn.Module]:
    blocks = transformer_layers(model)
    chosen = range(len(blocks)) if layers is None else [index % len(blocks) for index in layers]
    modules = []
    for kind in hooks:
        if kind == "logits":
            modules.append(model.get_output_embeddings())
            continue
        for index in chosen:
            block = blocks[index]
            if kind == "residual":
                modules.append(block)
                continue
            found = next((getattr(block, name) for name in _SUBMODULES[kind] if hasattr(block, name)), None)
            if found is None:
                raise ValueError(
                    f"sparsepo hooks: block {index} of {type(model).__name__} has no {kind} submodule "
                    f"(looked for {', '.join(_SUBMODULES[kind])})"
                )
            modules.append(found)
    return modules


@contextlib.contextmanager
def captured_activations(
    model: nn.Module, hooks: Sequence[str], layers: Sequence[int] | None
) -> Iterator[list[torch.Tensor]]:
    """Collect one score per position, the mean over the hidden dimension, from each hooked output.

    Yields a list that fills with (N, L) float32 tensors during the forward run inside the block;
    outputs shorter than the sequence (logits kept from the completion on) are left-padded.
    """
    scores: list[torch.Tensor] = []

    def record(_module, _inputs, output):
        scores.append(_first_tensor(output).detach().float().mean(dim=-1))

    handles = [module.register_forward_hook(record) for module in _hook_modules(model, hooks, layers)]
    try:
        yield scores
    finally:
        for handle in handles:
            handle.remove()


def activation_mask(scores: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """MaPO mask: per captured tensor, rescale the completion's token scores to [0, 1], then average.

    The method z-normalises each sequence's scores over its completion tokens, then min-max
    rescales them; min-max is invariant to that positive affine map, so it is applied directly.
    A completion whose scores are all equal gets 1 everywhere. Zero outside the completion.

    Args:
        scores: (N, K) tensors, one per hook and layer, on the completion grid.
        mask: (N, K) completion tokens.
    """
    valid = mask.bool()
    total = torch.zeros_like(mask, dtype=torch.float32)
    for score in scores:
        low = score.masked_fill(~valid, math.inf).amin(dim=-1, keepdim=True)
        high = score.masked_fill(~valid, -math.inf).amax(dim=-1, keepdim=True)
        spread = high - low
        scaled = torch.where(spread > 0, (score - low) / spread.clamp(min=1e-30), torch.ones_like(score))
        total = total + scaled
    return (total / len(scores) * mask).detach()


class MaskHead(nn.Module):
    """SparsePO's learned mask: m(t) = ReLU(Σ_ℓ a_ℓ·s_ℓ,t), s_ℓ,t = Dropout(ReLU(w_ℓᵀ·LN(h_ℓ,t) + b_ℓ)).

    One LayerNorm shared by all layers; per layer a linear scorer (w_ℓ, b_ℓ); a bias-free mixer a.
    ``heads`` independent copies of scorers and mixer give m_u and m_d separately ("independent")
    or one mask for both ("common"); the LayerNorm is shared. Scorers start as ``nn.Linear(H, 1)``
    would; the mixer starts at 1/L (the layers' average), so a token's mask is zero only where
    every layer's score is, and no head starts dead (a mixer with negative weights can zero every
    token, and ReLU then passes no gradient). Inputs are detached: no gradient reaches the reference.
    """

    def __init__(self, num_layers: int, hidden_size: int, heads: int = 1, dropout: float = 0.01):
        super().__init__()
        self.num_layers, self.hidden_size, self.heads = num_layers, hidden_size, heads
        self.norm = nn.LayerNorm(hidden_size)
        bound = 1 / math.sqrt(hidden_size)
        self.weight = nn.Parameter(torch.empty(heads, num_layers, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(heads, num_layers).uniform_(-bound, bound))
        self.mixer = nn.Parameter(torch.full((heads, num_layers), 1 / num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, K, H) states of each of ``num_layers`` layers → (heads, N, K) non-negative masks."""
        if len(hidden_states) != self.num_layers:
            raise ValueError(
                f"mask head expects {self.num_layers} layers of states, got {len(hidden_states)}"
            )
        mixed = None
        for layer, states in enumerate(hidden_states):
            normed = self.norm(states.detach().to(self.weight.dtype))
            scores = (
                torch.einsum("nkh,eh->enk", normed, self.weight[:, layer]) + self.bias[:, layer, None, None]
            )
            term = self.dropout(torch.relu(scores)) * self.mixer[:, layer, None, None]
            mixed = term if mixed is None else mixed + term
        return torch.relu(mixed)

    def save(self, folder: str | Path) -> None:
        shape = {"num_layers": self.num_layers, "hidden_size": self.hidden_size, "heads": self.heads}
        tensors = {name: value.detach().cpu().contiguous() for name, value in self.state_dict().items()}
        save_file(tensors, str(Path(folder) / HEAD_FILE), metadata={"shape": json.dumps(shape)})

    def load(self, folder: str | Path) -> None:
        self.load_state_dict(load_file(str(Path(folder) / HEAD_FILE)))
