"""``harness card`` (write a trained model's card) and ``harness push`` (publish it to the hub)."""

from __future__ import annotations

import argparse
import re

from tokenpo.cards.errors import CardError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    card = subparsers.add_parser(
        "card",
        help="(re)write a trained model's model card (RUN/final/README.md)",
        description="Write RUN/final/README.md in the hub's format: metadata (base model, license, tags, "
        "model-index), the method, the benchmark table against the baseline (raw and normalised scores, "
        "intervals, paired deltas), the token picture (token-picture.svg beside it), the training "
        "configuration and curves, how to load it, versions and citations.",
    )
    card.add_argument("run_dir", metavar="RUN", help="a training run folder (harness train's output_dir, RUN/train/X)")
    card.add_argument("--results", nargs="+", default=[], metavar="EVAL_DIR", help="the model's evaluations "
                      "(result folders or results.json files: benchmarks, judges)")  # fmt: skip
    card.add_argument("--baseline", nargs="+", default=[], metavar="DPO_RESULTS",
                      help="the baseline's evaluations, for the Δ column")  # fmt: skip
    card.add_argument("--repo-id", metavar="ORG/NAME", help="name the card after the hub repository")
    card.set_defaults(run=_card)

    push = subparsers.add_parser(
        "push",
        help="upload a trained model, its tokenizer, card and picture to the hub in one commit",
        description="Upload RUN's final model (or a LoRA run's adapter) with its card to the hub repository "
        "ORG/NAME in one commit; large files that are already uploaded are skipped, so an interrupted "
        "push continues when run again. Needs a token (hf auth login, or HF_TOKEN).",
    )
    push.add_argument("run_dir", metavar="RUN", help="a finished training run folder")
    push.add_argument("--repo", required=True, metavar="ORG/NAME", help="the hub model repository (created if new)")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--revision", metavar="BRANCH", help="commit to this branch (created if new; default main)")
    push.add_argument("--adapter", action="store_true", help="LoRA runs: push the adapter (loaded through peft) "
                      "instead of the merged model")  # fmt: skip
    push.add_argument("--dry-run", action="store_true", help="list the files that would go, with sizes; upload nothing")
    push.set_defaults(run=_push)


def _card(args: argparse.Namespace) -> int:
    from tokenpo.cards import write_run_card

    if args.baseline and not args.results:
        raise CardError("--baseline: give the model's own --results too")
    _check_repo(args.repo_id, "--repo-id")
    path = write_run_card(args.run_dir, args.results, args.baseline, repo_id=args.repo_id)
    print(f"model card: {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from tokenpo.cards.publish import check_hub_access, describe, push, upload_plan

    _check_repo(args.repo, "--repo")
    if not args.dry_run:
        check_hub_access()  # before the card is rebuilt: its leaderboard takes a while
    plan = upload_plan(args.run_dir, "adapter" if args.adapter else "model", repo_id=args.repo)
    revision = f" (branch {args.revision})" if args.revision else ""
    if args.dry_run:
        print(f"would upload to {args.repo}{revision}:\n{describe(plan)}")
        return 0
    print(f"uploading {len(plan)} files to {args.repo}{revision} …", flush=True)
    print(f"committed: {push(plan, args.repo, private=args.private, revision=args.revision)}")
    return 0


def _check_repo(repo: str | None, flag: str) -> None:
    if repo is not None and not _REPO_ID.match(repo):
        raise CardError(f"{flag}: {repo!r} is not a hub repository id (ORG/NAME)")
