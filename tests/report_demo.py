"""A report from the most real data available: real lm-eval output plus labelled synthetic parts.

- Leaderboard: lm-eval's own output for two tiny random-init Llama models (``lmeval_output``).
- Training curves and token pictures: SYNTHETIC run folders (made-up curves and scores on
  real tokens of the tiny tokenizer), named ``SYNTHETIC-…`` so nobody mistakes them for runs.
- Reward–KL frontier: SYNTHETIC sentiment results in our result-folder format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from leaderboard_helpers import write_result, write_run
from lmeval_output import TEST_BENCHMARKS

from leaderboards.report import KL_METRIC, REWARD_METRIC, write_report

# Made-up pairs (not benchmark data): chosen, rejected.
PAIRS = (
    ("Practise a little every day and read books you enjoy.", "Just give up, languages are too hard."),
    ("The capital of France is Paris.", "The capital of France is Rome, obviously."),
    ("This movie was wonderful, moving and funny.", "This film was boring and far too long."),
)


def write_demo_inputs(folder: Path, lmeval_dir: Path, tokenizer) -> tuple[list[str], list[Path]]:
    """Result arguments (``METHOD=PATH``) and run folders for the demo report."""
    tokens = [
        tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]) for pair in PAIRS for text in pair
    ]
    runs = [
        write_run(folder / "runs" / "SYNTHETIC-dpo", "dpo", seed=0),
        write_run(folder / "runs" / "SYNTHETIC-sparsepo", "sparsepo", seed=1, tokens=tokens),
        write_run(folder / "runs" / "SYNTHETIC-tidpo", "tidpo", seed=2, tokens=tokens),
    ]
    rng = np.random.default_rng(0)
    sentiment = []
    for method, strength in (("SYNTHETIC-dpo", 1.0), ("SYNTHETIC-sparsepo", 1.4), ("SYNTHETIC-tdpo", 1.2)):
        for seed, kl in enumerate((2.0, 5.0, 9.0)):
            reward = 1 - np.exp(-strength * kl / 4)
            positive = (rng.random(200) < reward).astype(float)
            kls = rng.gamma(4.0, kl / 4.0, 200)
            path = folder / "sentiment" / f"{method}-{seed}"
            write_result(
                path,
                {"SYNTHETIC_sentiment": {REWARD_METRIC: positive, KL_METRIC: kls}},
                method,
                seed=seed,
                model="synthetic",
                higher_is_better={"kl_to_ref": False},
            )
            sentiment.append(str(path))
    results = [str(lmeval_dir / "tiny-llama-seed0"), str(lmeval_dir / "tiny-llama-seed1"), *sentiment]
    return results, runs


def build_demo_report(folder: Path, lmeval_dir: Path, tokenizer) -> Path:
    results, runs = write_demo_inputs(folder, lmeval_dir, tokenizer)
    return write_report(
        results=results,
        runs=runs,
        baseline="tiny-llama-seed0",
        out=folder / "report.html",
        benchmarks=TEST_BENCHMARKS,
        n_boot=500,
    )
