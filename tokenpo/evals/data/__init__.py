"""Offline mirrors of the benchmarks' hub datasets, in the exact schemas lm-eval's tasks read."""

from tokenpo.evals.data.mirror import MIRRORS, converter_for, default_data_dir, mirror_folder
from tokenpo.evals.data.prepare import PreparedData, load_manifest, prepare_benchmarks

__all__ = [
    "MIRRORS",
    "PreparedData",
    "converter_for",
    "default_data_dir",
    "load_manifest",
    "mirror_folder",
    "prepare_benchmarks",
]
