"""A report from the most real data available: real lm-eval output plus labelled synthetic parts.

- Leaderboard: lm-eval's own output for two tiny random-init Llama models (``lmeval_output``).
- Training curves and token pictures: SYNTHETIC run folders (made-up curves and scores on
  real tokens of the tiny tokenizer), named ``SYNTHETIC-…`` so nobody mistakes them for runs.
- Reward–KL frontier: SYNTHETIC sentiment results in our result-folder format (three families ×
  three β × two seeds, the base model, one run flagged by training health).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from leaderboard_helpers import write_result, write_run
from lmeval_output import TEST_BENCHMARKS

from tokenpo.leaderboards.frontier import KL_METRIC, REWARD_METRIC
from tokenpo.leaderboards.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
# The environment's flags for a headless Chromium that talks to nothing.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Made-up pairs (not benchmark data): chosen, rejected.
PAIRS = (
    ("Practise a little every day and read books you enjoy.", "Just give up, languages are too hard."),
    ("The capital of France is Paris.", "The capital of France is Rome, obviously."),
    ("This movie was wonderful, moving and funny.", "This film was boring and far too long."),
)


def write_demo_inputs(folder: Path, lmeval_dir: Path, tokenizer) -> tuple[list[str], list[Path]]:
    """Result arguments (``METHOD=PATH``) and run folders for the demo report."""
    tokens = [tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]) for pair in PAIRS for text in pair]
    runs = [
        write_run(folder / "runs" / "SYNTHETIC-dpo", "dpo", seed=0, flags=[]),
        write_run(folder / "runs" / "SYNTHETIC-sparsepo", "sparsepo", seed=1, tokens=tokens, flags=[]),
        write_run(folder / "runs" / "SYNTHETIC-tidpo", "tidpo", seed=2, tokens=tokens),
    ]
    rng = np.random.default_rng(0)
    sentiment = []

    def add(name: str, method: str, seed: int | None, positive_rate: float, kl: float, harness: dict) -> None:
        positive = (rng.random(200) < positive_rate).astype(float)
        kls = rng.gamma(4.0, kl / 4.0, 200)
        path = folder / "sentiment" / name
        write_result(
            path,
            {"SYNTHETIC_sentiment": {REWARD_METRIC: positive, KL_METRIC: kls}},
            method,
            seed=seed,
            model="synthetic",
            higher_is_better={"kl_to_ref": False},
            harness=harness,
        )
        sentiment.append(str(path))

    add("base", "base", None, 0.3, 0.05, {"method_family": "base", "beta": None, "training_health": []})
    flat = {"metric": "rewards/margins", "value": 0.0008, "problem": "margins stayed flat (SYNTHETIC)"}
    for family, strength in (("SYNTHETIC-dpo", 1.0), ("SYNTHETIC-sparsepo", 1.4), ("SYNTHETIC-tdpo", 1.2)):
        for beta, kl in ((0.5, 2.0), (0.1, 5.0), (0.05, 9.0)):
            for seed in (0, 1):
                flags = [flat] if (family, beta, seed) == ("SYNTHETIC-tdpo", 0.05, 1) else []
                harness = {"method_family": family, "beta": beta, "training_health": flags}
                reward = 1 - np.exp(-strength * kl / 4)
                add(f"{family}-{beta}-{seed}", f"{family}-b{beta}", seed, reward, kl, harness)
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


def main() -> None:
    """Two uses, from the repository root:

    ``python tests/report_demo.py --screenshot runs/quickstart/report.html docs/report-screenshot.png``
    rebuilds docs/report-screenshot.png from a real run (the quickstart's report; its top 3300 px:
    table, benchmark charts, reward–KL frontier, training curves).

    ``flock /tmp/heavy-cpu.lock python tests/report_demo.py OUT_DIR PNG`` builds the demo report: real
    lm-eval output of SmolLM2-135M-Instruct and the two tiny models on the offline MMLU/GSM8K subsets,
    plus the SYNTHETIC runs and sentiment results.
    """
    import os
    import sys

    if sys.argv[1] == "--screenshot":
        take_screenshot(Path(sys.argv[2]), Path(sys.argv[3]), height=3300)
        return

    from lmeval_output import evaluate, write_tasks

    from tokenpo.harness.models import load_causal_lm, load_tokenizer, resolve_model
    from tokenpo.harness.models.tiny import build_tiny_model

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out, screenshot = Path(sys.argv[1]), Path(sys.argv[2])
    benchmarks = Path(os.environ.get("HARNESS_BENCHMARKS", Path(__file__).parents[1].parent / "shared" / "benchmarks"))
    tasks = write_tasks(out / "tasks", benchmarks)
    lmeval_dir = out / "lmeval"
    path = resolve_model("smollm2-135m-instruct")
    evaluate(load_causal_lm(path), load_tokenizer(path), "SmolLM2-135M-Instruct", tasks, lmeval_dir, limit=100)
    for seed in (0, 1):
        evaluate(*build_tiny_model("llama", seed=seed), f"tiny-llama-seed{seed}", tasks, lmeval_dir, limit=100)
    results, runs = write_demo_inputs(out, lmeval_dir, build_tiny_model("llama")[1])
    results.insert(0, str(lmeval_dir / "SmolLM2-135M-Instruct"))
    report = write_report(
        results=results,
        runs=runs,
        baseline="SmolLM2-135M-Instruct",
        out=out / "report.html",
        benchmarks=TEST_BENCHMARKS,
    )
    take_screenshot(report, screenshot)
    print(f"wrote {report} and {screenshot}")


@contextlib.contextmanager
def chromium_page(profile: Path, width: int = 1400) -> Iterator:
    """A Playwright page in Debian's headless Chromium with a fresh profile folder."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": width, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def take_screenshot(report: Path, png: Path, height: int | None = None, width: int = 1400) -> None:
    """The whole page, or its top ``height`` pixels."""
    with tempfile.TemporaryDirectory() as profile, chromium_page(Path(profile), width) as page:
        page.goto(report.resolve().as_uri(), wait_until="load")
        clip = {"x": 0, "y": 0, "width": width, "height": height} if height else None
        page.screenshot(path=str(png), full_page=True, clip=clip)


if __name__ == "__main__":
    main()
