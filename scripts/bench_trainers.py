"""Step time and peak memory of each method on SmolLM2-135M (bf16, CPU), 4 pairs × 256 tokens.

    flock /tmp/heavy-cpu.lock python scripts/bench_trainers.py [--steps 3] [--out bench.json]

Each method runs in its own process (peak RSS is per process). The pairs are HH-RLHF helpful-base
pairs whose prompt + completion reach 256 tokens, cut to exactly 256 (prompt ≤ 128).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("HARNESS_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))

# (label, method settings, training settings, steps measured): anchors every 8 steps need 8 steps
# to show their average; "dpo-live-reference" is DPO as TRL runs it by default.
METHODS = [
    ("dpo", {"name": "dpo"}, {}, None),
    ("dpo-live-reference", {"name": "dpo"}, {"precompute_reference": False}, None),
    ("tdpo2", {"name": "tdpo"}, {}, None),
    ("sparsepo-activation", {"name": "sparsepo", "mask": "activation"}, {}, None),
    ("sparsepo-learned-common", {"name": "sparsepo", "mask": "learned", "heads": "common"}, {}, None),
    ("tidpo-policy-importance", {"name": "tidpo", "importance_source": "policy", "gamma": 0.0}, {}, None),
    ("tidpo-reference-importance-anchors-every-8",
     {"name": "tidpo", "importance_source": "reference", "anchor_every": 8, "anchor_max_new_tokens": 64}, {}, 8),
]


def select_pairs(model_path: str, count: int = 4, length: int = 256, prompt: int = 128):
    from trainers.data import TruncationPolicy, load_preferences, tokenize_example
    from trainers.run import load_training_tokenizer

    tokenizer = load_training_tokenizer(model_path)
    policy = TruncationPolicy(length, prompt)
    loaded = load_preferences(
        str(BENCHMARKS / "hh_rlhf" / "helpful-base_test.jsonl.gz"), fmt="hh-rlhf-chat", skip_invalid=True
    )
    chosen = []
    for example in loaded.examples:
        pair = tokenize_example(example, tokenizer, policy)
        if len(pair.prompt_ids) + min(len(pair.chosen_ids), len(pair.rejected_ids)) == length:
            chosen.append(example)
            if len(chosen) == count:
                return chosen
    raise SystemExit(f"fewer than {count} HH pairs reach {length} tokens")


def run_one(label: str, method: dict, training: dict, steps: int, model_path: str, queue) -> None:
    from harness.config import from_mapping
    from trainers.bench import benchmark_steps
    from trainers.config import TrainConfig

    config = from_mapping(
        TrainConfig,
        {
            "method": method,
            "training": {
                "per_device_batch_size": 4,
                "max_steps": 1000,
                "max_length": 256,
                "max_prompt_length": 128,
                "model_dtype": "bfloat16",
                "learning_rate": 1e-6,
                "warmup_ratio": 0.0,
            },
        },
    )
    with tempfile.TemporaryDirectory() as scratch:
        result = benchmark_steps(config, model_path, select_pairs(model_path), Path(scratch), steps=steps)
    queue.put(
        {
            "method": label,
            "median_step_s": round(result.median_step_seconds, 2),
            "mean_step_s": round(result.mean_step_seconds, 2),
            "steps": [round(s, 2) for s in result.step_seconds],
            "precompute_s": round(result.precompute_seconds, 2),
            "peak_rss_gb": round(result.peak_rss_gb, 2),
            "tokens_per_step": result.tokens_per_step,
            # Other work on the machine inflates step times: the 1-minute load average at the end.
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="measured steps per method (after one warm-up)")
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    from harness.models import resolve_model

    model_path = str(resolve_model("smollm2-135m-instruct"))
    context = multiprocessing.get_context("spawn")
    results = []
    for label, method, training, steps in METHODS:
        if args.only and label not in args.only:
            continue
        queue = context.Queue()
        process = context.Process(
            target=run_one, args=(label, method, training, steps or args.steps, model_path, queue)
        )
        process.start()
        results.append(queue.get())
        process.join()
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
