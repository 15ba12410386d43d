"""``harness data check``: validate a preference file and show its sizes in tokens."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tokenpo.harness.models import DEFAULT_MODEL, load_tokenizer, resolve_model
from tokenpo.harness.options import add_field_options
from tokenpo.harness.pipeline.config import DataConfig
from tokenpo.trainers.config import TrainingConfig
from tokenpo.trainers.data import (
    LoadedPreferences,
    TruncationPolicy,
    length_statistics,
    load_preferences,
    tokenize_examples,
    write_rejects,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="check preference data; prepare offline benchmark data")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a preference file and print counts and token lengths")
    check.add_argument("file", help="JSONL, JSON, CSV (optionally .gz), Parquet, or a hub dataset id")
    add_loading_arguments(check)
    check.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model whose tokenizer counts tokens (default {DEFAULT_MODEL})"
    )
    add_field_options(check, TrainingConfig, "max_length", "max_prompt_length")
    check.set_defaults(run=_check)

    prepare = actions.add_parser(
        "prepare", help="convert benchmark files (laid out as shared/benchmarks) for offline evals"
    )
    prepare.add_argument(
        "--from", dest="source", required=True, help="folder with gsm8k/, mmlu/, gpqa/, … as in shared/benchmarks"
    )
    prepare.add_argument("--out", help="prepared data folder (default: $HARNESS_DATA, else <cache>/benchmarks)")
    prepare.add_argument("--only", help="comma-separated benchmarks (default: every one present)")
    prepare.set_defaults(run=_prepare)


def add_loading_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads preference data shares: keys of the ``data`` block."""
    add_field_options(parser, DataConfig, "format", "split", "skip_invalid", "truncated_completions")
    parser.add_argument("--rejects", help="where skipped records go (default: ./<name>.rejects.jsonl)")


def load_reporting_rejects(
    file: str, *, fmt: str, split: str, skip_invalid: bool, truncated_completions: str, rejects: str | None
) -> LoadedPreferences:
    """Load ``file``; when records were skipped, say how many and write them to ``rejects`` (default:
    ``NAME.rejects.jsonl`` in the working folder)."""
    loaded = load_preferences(
        file, fmt=fmt, split=split, skip_invalid=skip_invalid, truncated_completions=truncated_completions
    )
    if loaded.rejected:
        name = Path(file).name.split(".")[0] or "data"
        rejects_path = Path(rejects or f"{name}.rejects.jsonl")
        write_rejects(loaded.rejected, rejects_path)
        skipped = f"skipped {len(loaded.rejected)} invalid records of {loaded.total}; written to {rejects_path}"
        print(skipped, file=sys.stderr)
        for item in loaded.rejected[:5]:
            print(f"  {item.error}", file=sys.stderr)
    return loaded


def _check(args: argparse.Namespace) -> int:
    try:
        policy = TruncationPolicy(args.max_length, args.max_prompt_length)
    except ValueError as error:
        from tokenpo.harness.errors import HarnessError

        raise HarnessError(f"--max-length/--max-prompt-length: {error}") from error
    loaded = load_reporting_rejects(
        args.file,
        fmt=args.format,
        split=args.split,
        skip_invalid=args.skip_invalid,
        truncated_completions=args.truncated_completions,
        rejects=args.rejects,
    )
    tokenizer = load_tokenizer(resolve_model(args.model))
    pairs = tokenize_examples(loaded.examples, tokenizer, policy)
    conversational = sum(example.conversational for example in loaded.examples)
    print(f"file:        {args.file}")
    print(f"records:     {loaded.total}  valid: {len(loaded.examples)}  skipped: {len(loaded.rejected)}")
    print(f"format:      {len(loaded.examples) - conversational} standard, {conversational} conversational")
    print(f"tokenizer:   {args.model}")
    print(f"\n{'tokens':18}{'min':>8}{'mean':>10}{'p50':>8}{'p95':>8}{'max':>8}")
    for name, stats in length_statistics(pairs).items():
        print(
            f"{name:18}{stats['min']:8.0f}{stats['mean']:10.1f}{stats['p50']:8.0f}{stats['p95']:8.0f}{stats['max']:8.0f}"
        )
    truncated = sum(pair.truncated for pair in pairs)
    print(
        f"\ntruncated at max_length={policy.max_length}, max_prompt_length={policy.max_prompt_length}: "
        f"{truncated} of {len(pairs)} pairs ({100 * truncated / len(pairs):.1f}%)"
    )
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from tokenpo.evals.data import default_data_dir, prepare_benchmarks
    from tokenpo.evals.punkt import install_punkt_tab
    from tokenpo.evals.tasks import write_task_configs
    from tokenpo.harness.models.cache import cache_root

    out = Path(args.out) if args.out else default_data_dir(cache_root())
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    prepared = prepare_benchmarks(Path(args.source), out, only)
    for name, entry in sorted(prepared.manifest["benchmarks"].items()):
        rows = sum(info["rows"] for info in entry["files"].values())
        note = f"  ({entry['note']})" if entry["note"] else ""
        print(f"{name:12} {rows:6} rows in {len(entry['files'])} files{note}")
    if prepared.skipped:
        print(f"skipped (no folder in {args.source}): {', '.join(prepared.skipped)}")
    install_punkt_tab(prepared.data_dir / "nltk_data")
    tasks = write_task_configs(prepared.data_dir / "lm_eval_tasks", prepared.data_dir)
    print(f"\nprepared: {prepared.data_dir}  (manifest.json has every file's sha256)")
    print(f"lm-eval task configs for {len(tasks.tasks)} tasks/groups: lm_eval --include_path {tasks.folder} ...")
    return 0
