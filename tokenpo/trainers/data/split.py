"""Held-out preference pairs: a seeded share of the data kept out of training and evaluated on.

The share is drawn as ``datasets.Dataset.train_test_split`` draws a float ``test_size``: ⌈fraction · n⌉
pairs held out. The draw depends on the pairs' count and the seed alone, so a resumed run (or a second
run of the same configuration) holds out the same pairs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

from tokenpo.trainers.data.errors import DataError

T = TypeVar("T")


def held_out_split(pairs: Sequence[T], fraction: float, seed: int, source: str = "data") -> tuple[list[T], list[T]]:
    """``(training, held out)``: ⌈``fraction`` · n⌉ pairs drawn without replacement from a
    ``random.Random(seed)``, the rest for training, both in their original order.

    Refused in one line naming ``source`` and ``eval_fraction``: a fraction outside (0, 1), or one that holds
    out no pair or every pair."""
    if not 0.0 < fraction < 1.0:
        raise DataError(source, None, "eval_fraction", f"must lie strictly between 0 and 1, got {fraction}")
    held = math.ceil(fraction * len(pairs))
    if held >= len(pairs):
        raise DataError(source, None, "eval_fraction", f"{fraction} of {len(pairs)} pairs leaves none to train on")
    chosen = set(random.Random(seed).sample(range(len(pairs)), held))
    return [p for i, p in enumerate(pairs) if i not in chosen], [p for i, p in enumerate(pairs) if i in chosen]
