"""Where each MaPO hook point sits in a ``transformers`` architecture, and the forward hooks that read it.

:func:`tokenpo.trainers.activations.captured_activations` selects the points (see the list in
:mod:`tokenpo.trainers.activations`); :class:`Hooks` finds them by the usual submodule names of each
architecture, registers one PyTorch hook per point and layer, and records each captured tensor at
once as a score per position. Split from ``activations.py`` so that one reads as what is captured
and how a mask is made of it, this one as how each architecture is searched.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from tokenpo.trainers.forward import is_peft, transformer_layers

# Usual submodule names across architectures, tried in order (Llama/Mistral/Qwen/Gemma, GPT-2,
# GPT-NeoX, then others). A name missing from a block makes its points "missing", never an error.
_ATTENTION = ("self_attn", "attn", "attention", "self_attention")
_MLP = ("mlp", "feed_forward", "ffn", "block_sparse_moe")
_MLP_OUT = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "fc_out", "w2")
_ATTENTION_OUT = ("o_proj", "c_proj", "dense", "out_proj")
# Fused q/k/v projections whose layouts ``_Layout.split_fused`` knows.
_FUSED_QKV = ("c_attn", "qkv_proj", "query_key_value")
_INPUT_NORM = ("input_layernorm", "ln_1", "attention_norm")
_FINAL_NORM = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")


@dataclass
class ActivationCapture:
    """What ``captured_activations`` records.

    ``scores`` maps a type to its (N, L') float32 detached score tensors, one per captured point and
    layer, in the order the forward computes them; it has a key for each type with a found point and
    fills during the forward. ``found``/``missing`` are the selected ``"type.point"`` names this
    architecture has (in at least one chosen block) or has not, in ``HOOK_POINTS`` order.
    """

    scores: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _score(tensor: torch.Tensor, head_dims: tuple[int, ...] = (-1,)) -> torch.Tensor:
    """Mean over the hidden dimension(s): (N, L, H) over -1; per-head (N, heads, L, head_dim) over (1, 3)."""
    return tensor.detach().float().mean(dim=head_dims)


def _first_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _input_tensor(args: tuple, kwargs: dict, name: str = "hidden_states") -> torch.Tensor:
    return args[0] if args else kwargs[name]


def _child(module: nn.Module, names: Sequence[str]) -> nn.Module | None:
    return next((getattr(module, name) for name in names if isinstance(getattr(module, name, None), nn.Module)), None)


def unwrapped(model: nn.Module) -> nn.Module:
    """The ``transformers`` model inside DDP-style and peft wrappers."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model.get_base_model() if is_peft(model) else model


def _text_config(model: nn.Module) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


@dataclass(frozen=True)
class _Layout:
    """Head layout of one attention module."""

    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, attention: nn.Module, config: Any) -> _Layout | None:
        heads = getattr(config, "num_attention_heads", None)
        if not heads:
            return None
        head_dim = (
            getattr(attention, "head_dim", None)
            or getattr(attention, "head_size", None)  # GPT-NeoX
            or getattr(config, "head_dim", None)
            or config.hidden_size // heads
        )
        return cls(heads, getattr(config, "num_key_value_heads", None) or heads, head_dim)

    def fused_width(self, name: str) -> int:
        heads = 3 * self.heads if name == "query_key_value" else self.heads + 2 * self.kv_heads
        return heads * self.head_dim

    def split_fused(self, name: str, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """A fused projection's (N, L, W) output → q, k, v, each (N, L, heads·head_dim).

        ``query_key_value`` (GPT-NeoX, BLOOM, Falcon without grouped kv) interleaves per head:
        (N, L, heads, 3, head_dim). ``c_attn`` (GPT-2) and ``qkv_proj`` (Phi-3) concatenate
        [q | k | v] of heads·head_dim, kv_heads·head_dim, kv_heads·head_dim (GPT-2: thirds).
        """
        if output.shape[-1] != self.fused_width(name):
            raise RuntimeError(
                f"attention q/k/v: {name} output of width {output.shape[-1]}, not {self.fused_width(name)}"
            )
        if name == "query_key_value":
            parts = output.view(*output.shape[:2], self.heads, 3, self.head_dim).unbind(dim=3)
            return {part: tensor.flatten(2) for part, tensor in zip("qkv", parts)}
        sizes = (self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim)
        return dict(zip("qkv", output.split(sizes, dim=-1)))


class _Rotary:
    """Rebuilds q and k after the rotary embedding from the pre-rotary q and k of one attention.

    Available where the attention's modeling module defines ``apply_rotary_pos_emb(q, k, cos, sin,
    ...)`` and the attention receives ``position_embeddings=(cos, sin)`` (Llama, Mistral, Qwen, Gemma,
    Phi-3, GPT-NeoX in transformers 5); GPT-2 has no rotary, GPT-J's function has another signature.
    The rotated q is the model's own: ``q_norm``'s output when the attention has one (Qwen3, OLMo2,
    Gemma3 normalise q and k before rotating them), else the projection's q. Assumes, as these
    architectures do, that the whole q and k go through that function.
    """

    def __init__(self, function: Callable, head_dim: int, parameter_index: int):
        self.function, self.head_dim, self.parameter_index = function, head_dim, parameter_index

    @classmethod
    def of(cls, attention: nn.Module, layout: _Layout | None) -> _Rotary | None:
        """The rotary of ``attention``, or None where it is not available as described above."""
        function = getattr(sys.modules.get(type(attention).__module__), "apply_rotary_pos_emb", None)
        if (
            layout is None
            or not callable(function)
            or _parameters(_python_function(function))[:4] != ["q", "k", "cos", "sin"]
        ):
            return None
        parameters = _parameters(attention.forward)
        if "position_embeddings" not in parameters:
            return None
        return cls(function, layout.head_dim, parameters.index("position_embeddings"))

    def position_embeddings(self, args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        found = kwargs.get("position_embeddings")
        if found is None and len(args) > self.parameter_index:
            found = args[self.parameter_index]
        if found is None:
            raise RuntimeError("attention.q_rotary/k_rotary: the attention was called without position_embeddings")
        return found

    def heads(self, tensor: torch.Tensor) -> torch.Tensor:
        """(N, L, heads·head_dim) or (N, L, heads, head_dim) → (N, heads, L, head_dim)."""
        return tensor.reshape(*tensor.shape[:2], -1, self.head_dim).transpose(1, 2)


def _python_function(function: Callable) -> Callable:
    """The Python function behind ``function``: itself, or the one a hub-kernel wrapper falls back to.

    With the ``kernels`` package installed (transformers ≥ 5.25 requires it), ``apply_rotary_pos_emb``
    is an ``nn.Module`` instance whose ``forward(*args, **kwargs)`` runs the modeling file's function
    unless ``kernelize`` swapped in a hub kernel of the same contract; the wrapper keeps that function
    only in its ``forward``'s closure. Its signature is what says the arguments are (q, k, cos, sin);
    the hooks still call the wrapper, as the attention does.
    """
    if isinstance(function, nn.Module):
        wrapped = inspect.getclosurevars(type(function).forward).nonlocals.get("func")
        return wrapped if callable(wrapped) else function
    return function


def _parameters(function: Callable) -> list[str]:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # builtins and some C extensions have no signature
        return []


class Hooks:
    """Registers the hooks of the selected points and records their scores into ``capture``."""

    def __init__(self, points: list[str]):
        self.points = points
        self.capture = ActivationCapture()
        self.handles: list[RemovableHandle] = []
        self.found: set[str] = set()

    def wanted(self, name: str) -> bool:
        return name in self.points

    def record(self, name: str, score: torch.Tensor) -> None:
        self.capture.scores[name.split(".")[0]].append(score)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    # -------------------------------------------------------------- generic hooks

    def on_output(self, name: str, module: nn.Module | None) -> None:
        """Score of the module's output (first element of a tuple)."""
        if module is None or not self.wanted(name):
            return
        self.found.add(name)
        self.handles.append(
            module.register_forward_hook(lambda _m, _a, out: self.record(name, _score(_first_tensor(out))))
        )

    def on_input(self, name: str, module: nn.Module | None) -> None:
        """Score of the module's input (first positional argument, or ``hidden_states``)."""
        if module is None or not self.wanted(name):
            return
        self.found.add(name)
        self.handles.append(
            module.register_forward_pre_hook(
                lambda _m, args, kwargs: self.record(name, _score(_input_tensor(args, kwargs))), with_kwargs=True
            )
        )

    # -------------------------------------------------------------- registration

    def register(self, model: nn.Module, layers: Sequence[int] | None) -> None:
        blocks = transformer_layers(model)
        if layers is not None and len(layers) == 0:
            raise ValueError("activation hooks: an empty list of layers selects no decoder block")
        chosen = range(len(blocks)) if layers is None else sorted({index % len(blocks) for index in layers})
        config = _text_config(model)
        for index in chosen:
            self.register_block(blocks[index], config)
        self.register_model(model, blocks[0])
        self.capture.found = [name for name in self.points if name in self.found]
        self.capture.missing = [name for name in self.points if name not in self.found]
        for name in self.capture.found:
            self.capture.scores.setdefault(name.split(".")[0], [])

    def register_model(self, model: nn.Module, first_block: nn.Module) -> None:
        self.on_input("residual.embeddings", first_block)
        head = model.get_output_embeddings()
        norm = _child(getattr(model, "base_model", model), _FINAL_NORM)
        if norm is not None:
            self.on_output("residual.final_norm", norm)
        else:  # the LM head reads the final norm's output (only the kept positions with logits_to_keep)
            self.on_input("residual.final_norm", head)
        # Mean over the vocabulary: (N, L', V) → (N, L').
        self.on_output("logits.logits", head)

    def register_block(self, block: nn.Module, config: Any) -> None:
        attention, mlp = _child(block, _ATTENTION), _child(block, _MLP)
        self.on_output("residual.input_norm", _child(block, _INPUT_NORM))
        self.on_output("residual.attention_delta", attention)
        residual_norm = self.pre_mlp_norm(block)
        if not _parallel_residual(config):
            # In parallel blocks (x + attn(ln1(x)) + mlp(ln2(x))) this norm reads the block input.
            self.on_input("residual.post_attention", residual_norm)
        self.on_output("residual.post_attention_norm", residual_norm)
        self.on_output("residual.mlp_delta", mlp)
        self.on_output("residual.block_output", block)
        if mlp is not None:
            self.on_input("mlp.post_act", _child(mlp, _MLP_OUT))
        if attention is not None:
            self.register_attention(attention, config)

    @staticmethod
    def pre_mlp_norm(block: nn.Module) -> nn.Module | None:
        """The norm that reads the residual stream before the MLP.

        Sandwich-norm blocks (Gemma 2/3) name it ``pre_feedforward_layernorm``; there, and in
        post-norm blocks (OLMo2, with ``post_feedforward_layernorm``), ``post_attention_layernorm``
        normalises the attention output instead, so it does not count.
        """
        norm = _child(block, ("pre_feedforward_layernorm",))
        if norm is not None or hasattr(block, "post_feedforward_layernorm"):
            return norm
        return _child(block, ("post_attention_layernorm", "ln_2", "ffn_norm"))

    def register_attention(self, attention: nn.Module, config: Any) -> None:
        self.on_input("attention.output", _child(attention, _ATTENTION_OUT))
        layout = _Layout.of(attention, config)
        wants_rotary = self.wanted("attention.q_rotary") or self.wanted("attention.k_rotary")
        rotary = _Rotary.of(attention, layout) if wants_rotary else None
        # Pre-rotary q and k of the current call, (N, heads, L, head_dim), kept for the rotary points.
        pending: dict[str, torch.Tensor] = {}

        def keep(part: str, tensor: torch.Tensor) -> None:
            pending[part] = rotary.heads(tensor.detach())

        if self.register_qkv(attention, layout, keep if rotary is not None else None) and rotary is not None:
            self.register_rotary(attention, rotary, pending, keep)

    def register_qkv(
        self, attention: nn.Module, layout: _Layout | None, keep: Callable[[str, torch.Tensor], None] | None
    ) -> bool:
        """Hooks q, k, v, also handing q and k to ``keep`` when given; False when they are not found."""
        separate = [_child(attention, (f"{part}_proj",)) for part in "qkv"]
        if all(module is not None for module in separate):
            for part, module in zip("qkv", separate):
                self.on_output(f"attention.{part}", module)
                if keep is not None and part != "v":
                    self.handles.append(module.register_forward_hook(lambda _m, _a, out, part=part: keep(part, out)))
            return True
        name = next((name for name in _FUSED_QKV if _child(attention, (name,)) is not None), None)
        if name is None or layout is None:
            return False
        fused = getattr(attention, name)
        width = getattr(fused, "out_features", None) or getattr(fused, "nf", None)  # nn.Linear, peft / Conv1D
        if width is not None and width != layout.fused_width(name):
            return False  # another layout than the one known under this name (e.g. Falcon's grouped kv)
        wanted = [part for part in "qkv" if self.wanted(f"attention.{part}")]
        self.found.update(f"attention.{part}" for part in wanted)

        def on_fused(_module, _args, output):
            parts = layout.split_fused(name, output)
            for part in wanted:
                self.record(f"attention.{part}", _score(parts[part]))
            if keep is not None:
                keep("q", parts["q"])
                keep("k", parts["k"])

        if wanted or keep is not None:
            self.handles.append(fused.register_forward_hook(on_fused))
        return True

    def register_rotary(
        self,
        attention: nn.Module,
        rotary: _Rotary,
        pending: dict[str, torch.Tensor],
        keep: Callable[[str, torch.Tensor], None],
    ) -> None:
        # The model rotates q_norm(q) and k_norm(k) where these norms exist: they run after the projections.
        for part in "qk":
            norm = _child(attention, (f"{part}_norm",))
            if norm is not None:
                self.handles.append(norm.register_forward_hook(lambda _m, _a, out, part=part: keep(part, out)))
        rotated = [part for part in "qk" if self.wanted(f"attention.{part}_rotary")]
        self.found.update(f"attention.{part}_rotary" for part in rotated)

        def clear(_module, _args):
            pending.clear()

        def on_attention(_module, args, kwargs, _output):
            if "q" not in pending or "k" not in pending:
                raise RuntimeError("attention.q_rotary/k_rotary: the attention did not compute q and k")
            cos, sin = rotary.position_embeddings(args, kwargs)
            q, k = rotary.function(pending.pop("q"), pending.pop("k"), cos, sin)
            values = {"q": q, "k": k}
            for part in rotated:
                self.record(f"attention.{part}_rotary", _score(values[part], (1, 3)))

        self.handles.append(attention.register_forward_pre_hook(clear))
        self.handles.append(attention.register_forward_hook(on_attention, with_kwargs=True))


def _parallel_residual(config: Any) -> bool:
    """GPT-NeoX (``use_parallel_residual``) and Falcon (``parallel_attn``) add attention and MLP to one input."""
    return bool(getattr(config, "use_parallel_residual", False) or getattr(config, "parallel_attn", False))
