"""The one way the harness names "everything that determined this": a sha256 of canonical JSON.

Stages of a pipeline, training runs, evaluation journals and folder claims compare fingerprints
to decide whether earlier work can be reused; all of them use :func:`fingerprint`, so two equal
values always give one name, whatever their dict order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys, no spaces and non-JSON values (paths, dtypes) as their ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def fingerprint(value: Any, parts: Iterable[Any] = ()) -> str:
    """sha256 (hex) of ``value``'s canonical JSON followed by each of ``parts``' (streamed: a dataset
    of token ids is hashed pair by pair, never held as one string)."""
    digest = hashlib.sha256(canonical_json(value).encode())
    for part in parts:
        digest.update(b"\n" + canonical_json(part).encode())
    return digest.hexdigest()
