"""Offline mirrors of the benchmarks' hub datasets, in the exact schemas lm-eval's tasks read."""

from evals.data.mirror import MIRRORS, DatasetMirror, default_data_dir, mirror_folder
from evals.data.prepare import PreparedData, load_manifest, prepare_benchmarks

__all__ = [
    "MIRRORS",
    "DatasetMirror",
    "PreparedData",
    "default_data_dir",
    "load_manifest",
    "mirror_folder",
    "prepare_benchmarks",
]
