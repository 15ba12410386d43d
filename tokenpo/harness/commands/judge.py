"""``harness judge passk|sentiment|rouge``: the task judges on files, each writing a result folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenpo.harness.errors import HarnessError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("judge", help="score files with a judge: pass@k, sentiment, ROUGE")
    judges = parser.add_subparsers(dest="judge", metavar="JUDGE", required=True)
    out_help = "result folder: results.json + samples/JUDGE.jsonl"

    passk = judges.add_parser("passk", help="run code samples against their problems' tests in a sandbox")
    passk.add_argument("--problems", required=True, help="HumanEval or MBPP problems (JSONL/JSON, optionally .gz)")
    passk.add_argument("--samples", required=True, help="JSONL of {task_id, completion}; n per problem")
    passk.add_argument("--k", default="1", help="comma-separated k values (default 1)")
    passk.add_argument("--out", required=True, help=out_help)
    passk.add_argument("--timeout", type=float, default=10.0, help="wall seconds per sample (default 10)")
    passk.add_argument("--memory-mb", type=int, default=2048, help="address-space limit per sample (default 2048)")
    passk.add_argument("--workers", type=int, help="parallel sandboxes (default: CPU count)")
    passk.add_argument(
        "--require-isolation",
        default="",
        metavar="LIST",
        help="comma-separated sandbox protections to insist on ('all' for every one; see docs/sandbox.md); "
        "refuses to run where one is missing",
    )
    passk.set_defaults(run=_passk)

    sentiment = judges.add_parser("sentiment", help="P(positive) per text, and the policy's sequence KL to a reference")
    sentiment.add_argument(
        "--texts", required=True, help="JSONL/JSON records with text (or prompt + completion), or .txt"
    )
    sentiment.add_argument("--out", required=True, help=out_help)
    sentiment.add_argument("--classifier", help="a Hugging Face text-classification model (default: VADER, offline)")
    sentiment.add_argument(
        "--policy", help="model spec of the policy (with --reference: sequence KL on prompt+completion)"
    )
    sentiment.add_argument("--reference", help="model spec of the reference")
    sentiment.set_defaults(run=_sentiment)

    rouge = judges.add_parser("rouge", help="ROUGE-1/2/L/Lsum per sample with a bootstrap CI")
    rouge.add_argument("--predictions", required=True, help=".txt (one per line) or JSONL with 'prediction'")
    rouge.add_argument("--references", required=True, help=".txt (one per line) or JSONL with 'reference'")
    rouge.add_argument("--out", required=True, help=out_help)
    rouge.add_argument("--no-stemming", action="store_true", help="disable Porter stemming")
    rouge.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    rouge.add_argument("--seed", type=int, default=0)
    rouge.set_defaults(run=_rouge)


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError as error:
        raise HarnessError(f"--k: expected comma-separated integers, got {text!r}") from error
    if not ks or ks[0] < 1:
        raise HarnessError(f"--k: expected positive integers, got {text!r}")
    return ks


def _print(results: dict) -> None:
    for task, row in results["results"].items():
        for key, value in row.items():
            if "," in key and "_stderr" not in key:
                print(f"{task} {key.split(',')[0]}: {value:.4f}")


def _passk(args: argparse.Namespace) -> int:
    from tokenpo.evals.judges.files import judge_passk
    from tokenpo.sandbox import PROTECTIONS, SandboxLimits, check_protections

    try:
        limits = SandboxLimits(
            wall_seconds=args.timeout, cpu_seconds=max(1, int(args.timeout)), memory_bytes=args.memory_mb << 20
        )
        required = (
            PROTECTIONS
            if args.require_isolation.strip() == "all"
            else check_protections(args.require_isolation.split(","))
        )
    except ValueError as error:
        raise HarnessError(f"sandbox: {error}") from error
    _print(
        judge_passk(
            Path(args.problems), Path(args.samples), _ks(args.k), Path(args.out), limits, args.workers, required
        )
    )
    print(f"written: {args.out}")
    return 0


def _sentiment(args: argparse.Namespace) -> int:
    from tokenpo.evals.judges.files import judge_sentiment

    if bool(args.policy) != bool(args.reference):
        raise HarnessError("--policy and --reference: give both (for the sequence KL) or neither")
    kl_models = None
    if args.policy:
        from tokenpo.harness.models import load_causal_lm, load_tokenizer, resolve_model

        policy_path = resolve_model(args.policy)
        kl_models = (
            load_causal_lm(policy_path).eval(),
            load_causal_lm(resolve_model(args.reference)).eval(),
            load_tokenizer(policy_path),
        )
    _print(judge_sentiment(Path(args.texts), Path(args.out), args.classifier, kl_models))
    print(f"written: {args.out}")
    return 0


def _rouge(args: argparse.Namespace) -> int:
    from tokenpo.evals.judges.files import judge_rouge

    if args.bootstrap < 1:
        raise HarnessError("--bootstrap: expected a positive integer")
    _print(
        judge_rouge(
            Path(args.predictions),
            Path(args.references),
            Path(args.out),
            not args.no_stemming,
            args.bootstrap,
            args.seed,
        )
    )
    print(f"written: {args.out}")
    return 0
