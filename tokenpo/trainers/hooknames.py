"""The names of the activation hook points SparsePO's MaPO masks can read, and how a selection resolves to them.

Only names: nothing here imports torch or a model, so the configuration can validate ``hooks``
without importing the hooks themselves (``activations`` and ``hookpoints`` do that work).
"""

from __future__ import annotations

from collections.abc import Sequence

HOOK_TYPES = ("mlp", "attention", "residual", "logits")
HOOK_POINTS: dict[str, tuple[str, ...]] = {
    "mlp": ("post_act",),
    "attention": ("q", "k", "v", "q_rotary", "k_rotary", "output"),
    "residual": (
        "input_norm",
        "attention_delta",
        "post_attention",
        "post_attention_norm",
        "mlp_delta",
        "block_output",
        "embeddings",
        "final_norm",
    ),
    "logits": ("logits",),
}
_ALL_POINTS = [f"{kind}.{point}" for kind in HOOK_TYPES for point in HOOK_POINTS[kind]]
# Read once per forward, not per decoder block: ``layers`` does not restrict them.
MODEL_LEVEL_POINTS = ("residual.embeddings", "residual.final_norm", "logits.logits")


def resolve_points(selection: Sequence[str]) -> list[str]:
    """``"type"`` or ``"type.point"`` entries → the ``"type.point"`` names they select, in ``HOOK_POINTS`` order.

    A type selects all its points; duplicates collapse. Raises ValueError naming an unknown entry,
    or when nothing is selected.
    """
    if isinstance(selection, str):  # one entry, not a sequence of characters
        selection = [selection]
    chosen: set[str] = set()
    for entry in selection:
        if entry in HOOK_POINTS:
            chosen.update(f"{entry}.{point}" for point in HOOK_POINTS[entry])
        elif entry in _ALL_POINTS:
            chosen.add(entry)
        else:
            raise ValueError(
                f"unknown activation hook {entry!r}: expected a type ({', '.join(HOOK_TYPES)}) "
                f"or 'type.point' (e.g. 'residual.block_output'; points: {', '.join(_ALL_POINTS)})"
            )
    if not chosen:
        raise ValueError("no activation hook points selected")
    return [name for name in _ALL_POINTS if name in chosen]
