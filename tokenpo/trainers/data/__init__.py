"""Preference data in TRL's formats: read, validate, render, tokenise, batch."""

from tokenpo.trainers.data.collate import collate_pairs, collate_sequences
from tokenpo.trainers.data.errors import DataError
from tokenpo.trainers.data.loader import LoadedPreferences, Rejected, load_preferences, write_rejects
from tokenpo.trainers.data.records import FORMATS, PreferenceExample, mark_truncated, parse_record
from tokenpo.trainers.data.split import held_out_split
from tokenpo.trainers.data.tokenize import (
    TokenizedPair,
    TruncationPolicy,
    length_statistics,
    render_example,
    tokenize_example,
    tokenize_examples,
)

__all__ = [
    "FORMATS",
    "DataError",
    "LoadedPreferences",
    "PreferenceExample",
    "Rejected",
    "TokenizedPair",
    "TruncationPolicy",
    "collate_pairs",
    "collate_sequences",
    "held_out_split",
    "length_statistics",
    "load_preferences",
    "mark_truncated",
    "parse_record",
    "render_example",
    "tokenize_example",
    "tokenize_examples",
    "write_rejects",
]
