"""A mixture of preference sources in set proportions, drawn reproducibly from a seed.

OpenRLHF's ``--dataset_probs`` and ``datasets.interleave_datasets(probabilities=…)`` draw each example's
source at random, so a mixture's make-up varies with the seed. Here the counts are fixed by the weights
and only *which* pairs are drawn depends on the seed: source i of weight wᵢ gets nᵢ of the mixture's N
pairs, the largest-remainder rounding of N · wᵢ / Σw (ties to the earlier source), so the counts sum to N
and each is within one pair of its share. N is the ``total`` asked for, or the largest mixture no source
runs short of: N = ⌊min over sources of (pairs available) · Σw / wᵢ⌋ (a weight of 0 leaves a source out).
A source's pairs are drawn without replacement; the mixture is then shuffled, both with
``random.Random(seed)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tokenpo.trainers.data.errors import DataError

T = TypeVar("T")


@dataclass(frozen=True)
class MixedSource(Generic[T]):
    """One source's pairs (already read and validated) and its weight; ``label`` names it in errors and records."""

    label: str
    pairs: Sequence[T]
    weight: float


def mixture_counts(available: Sequence[int], weights: Sequence[float], total: int | None) -> list[int]:
    """How many pairs each source gives (module docstring); ``DataError`` when a source cannot give its share."""
    if any(w < 0 or not math.isfinite(w) for w in weights) or not sum(weights) > 0:
        raise DataError(
            "data.mixture", None, "weight", f"weights must be ≥ 0 and sum to a positive number, got {list(weights)}"
        )
    whole = sum(weights)
    shares = [w / whole for w in weights]
    if total is None:
        total = min(math.floor(n / share) for n, share in zip(available, shares, strict=True) if share > 0)
    exact = [total * share for share in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def mix(sources: Sequence[MixedSource[T]], total: int | None, seed: int) -> tuple[list[T], list[int]]:
    """The mixture (shuffled) and each source's count, in the order of ``sources``."""
    counts = mixture_counts([len(s.pairs) for s in sources], [s.weight for s in sources], total)
    rng = random.Random(seed)
    mixed: list[T] = []
    for source, count in zip(sources, counts, strict=True):
        if count > len(source.pairs):
            raise DataError(
                source.label, None, "weight", f"its share of {total} pairs is {count}, but it has {len(source.pairs)}"
            )
        mixed += [source.pairs[i] for i in sorted(rng.sample(range(len(source.pairs)), count))]
    rng.shuffle(mixed)
    return mixed, counts
