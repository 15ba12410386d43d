"""``harness judge passk|sentiment|rouge|winrate``: the task judges, each writing a result folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tokenpo.harness.errors import HarnessError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("judge", help="score with a judge: pass@k, sentiment, ROUGE, win rate")
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

    winrate = judges.add_parser(
        "winrate",
        help="win rate of a candidate's answers against a baseline's, judged pairwise (docs/winrate.md)",
    )
    winrate.add_argument(
        "--prompts",
        required=True,
        metavar="SET",
        help="hh-helpful (Anthropic-HH helpful-base test, first turn), ifeval, a JSONL of {prompt, id}, "
        "or hub:ORG/NAME[:SPLIT]",
    )
    winrate.add_argument("--limit", type=int, help="the first N prompts")
    winrate.add_argument(
        "--from",
        dest="benchmarks",
        metavar="DIR",
        default=os.environ.get("HARNESS_BENCHMARKS"),
        help="the benchmark data folder for hh-helpful and ifeval (default: $HARNESS_BENCHMARKS)",
    )
    for side in ("candidate", "baseline"):
        group = winrate.add_mutually_exclusive_group(required=True)
        group.add_argument(f"--{side}", metavar="MODEL", help=f"model spec: the {side}'s answers are generated here")
        group.add_argument(f"--{side}-answers", metavar="FILE", help=f"JSONL of {{prompt_id, answer}}: the {side}'s")
    winrate.add_argument("--max-new-tokens", type=int, default=256, help="answer length cap (default 256)")
    winrate.add_argument("--batch-size", type=int, default=8, help="answers generated per batch (default 8)")
    judge = winrate.add_mutually_exclusive_group(required=True)
    judge.add_argument(
        "--judge-url", metavar="URL", help="an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1"
    )
    judge.add_argument(
        "--judge-serve", metavar="MODEL", help="serve this model spec as the judge here (the hf backend's chat server)"
    )
    judge.add_argument("--reward-model", metavar="MODEL", help="a sequence-classification reward model as the judge")
    winrate.add_argument("--judge-model", metavar="NAME", help="the judge model's name at --judge-url")
    winrate.add_argument(
        "--judge-key-env", metavar="VAR", help="environment variable holding the endpoint's key (e.g. OPENAI_API_KEY)"
    )
    winrate.add_argument("--judge-max-tokens", type=int, default=512, help="judge reply cap (default 512)")
    winrate.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge call (default 60)")
    winrate.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples of the prompts (default 1000)"
    )
    winrate.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    winrate.add_argument(
        "--out", required=True, help="result folder: results.json, samples/winrate.jsonl, judgments.jsonl"
    )
    winrate.set_defaults(run=_winrate)


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


def _winrate(args: argparse.Namespace) -> int:
    from tokenpo.evals.judges.winrate import answers, prompts, run
    from tokenpo.harness.models import resolve_model

    if args.judge_url and not args.judge_model:
        raise HarnessError("--judge-model: name the judge model served at --judge-url")
    if not args.judge_url and (args.judge_model or args.judge_key_env):
        flag = "--judge-model" if args.judge_model else "--judge-key-env"
        raise HarnessError(f"{flag}: applies only with --judge-url (a judge served here or a reward model has none)")
    if args.judge_max_tokens < 1 or not args.judge_timeout > 0:
        raise HarnessError("--judge-max-tokens and --judge-timeout: expected positive numbers")
    if args.bootstrap < 1 or (args.limit is not None and args.limit < 1):
        raise HarnessError("--bootstrap and --limit: expected positive integers")
    benchmarks = Path(args.benchmarks) if args.benchmarks else None
    prompt_set = prompts.load_prompt_set(args.prompts, benchmarks, args.limit)
    sides, generation = {}, {}
    for side in ("candidate", "baseline"):
        spec, answers_file = getattr(args, side), getattr(args, f"{side}_answers")
        if answers_file:
            sides[side] = answers.read_answers(Path(answers_file), prompt_set)
            generation[side] = {"answers": answers_file}
        else:
            path = str(resolve_model(spec))
            generated = answers.generate_answers(path, prompt_set, args.max_new_tokens, args.batch_size)
            sides[side] = {a.prompt_id: a for a in generated}
            generation[side] = {"model": spec, "max_new_tokens": args.max_new_tokens, "decoding": "greedy"}
    judge = run.JudgeChoice(
        url=args.judge_url,
        model=args.judge_model,
        key_env=args.judge_key_env,
        serve=str(resolve_model(args.judge_serve)) if args.judge_serve else None,
        reward_model=str(resolve_model(args.reward_model)) if args.reward_model else None,
        max_tokens=args.judge_max_tokens,
        timeout=args.judge_timeout,
    )
    results = run.judge_and_write(
        run.answer_pairs(prompt_set, sides["candidate"], sides["baseline"]),
        judge,
        Path(args.out),
        n_boot=args.bootstrap,
        seed=args.seed,
        metadata={"prompts": args.prompts, "limit": args.limit, **generation},
    )
    _print_winrate(results["harness"])
    print(f"written: {args.out}")
    return 0


def _print_winrate(harness: dict) -> None:
    if not harness["judged_pairs"]:
        print("no pair was judged: no reply held a verdict in both orders (samples/winrate.jsonl, judgments.jsonl)")
    for name, label in (("win_rate_percent", "win rate"), ("lc_win_rate_percent", "length-controlled win rate")):
        rate = harness[name]
        if rate is None:
            continue
        print(f"{label}: {rate['value']:.1f} % [{rate['low']:.1f}, {rate['high']:.1f}] (95 % over prompts)")
    print(f"pairs judged: {harness['judged_pairs']} of {harness['pairs']} (unjudged: {harness['unjudged_pairs']})")
    bias = harness.get("position_bias")
    if bias:
        print(
            f"position bias: the first answer chosen in {_share(bias['first_share'])} of {bias['decisive']} "
            f"decisive judgments; the orders disagree on {_share(bias['flip_share'])} of {bias['pairs']} pairs"
        )


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
