"""``harness models pull|list``: the built-in models and the cache they are pulled into."""

from __future__ import annotations

import argparse

from tokenpo.harness.models import BUILTIN_MODELS, ModelStore
from tokenpo.harness.models.cache import CACHE_ENV


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="pull and list built-in models")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    cache_help = f"cache folder (default: ${CACHE_ENV}, else ~/.cache/tokenpo-harness)"

    pull = actions.add_parser("pull", help="make a built-in model available offline in the cache")
    pull.add_argument("name", choices=sorted(BUILTIN_MODELS), metavar="NAME", help=", ".join(sorted(BUILTIN_MODELS)))
    pull.add_argument("--cache-dir", help=cache_help)
    pull.add_argument("--offline", action="store_true", help="do not try the hub; use the offline source")
    pull.set_defaults(run=_pull)

    listing = actions.add_parser("list", help="list built-in models and whether they are pulled")
    listing.add_argument("--cache-dir", help=cache_help)
    listing.set_defaults(run=_list)


def _pull(args: argparse.Namespace) -> int:
    store = ModelStore(args.cache_dir)
    entry = store.entry(args.name)
    if entry.pulled:
        print(f"{args.name}: already pulled at {entry.path}")
        return 0
    print(f"{args.name}: pulling into {entry.path} …", flush=True)
    path = store.pull(args.name, prefer_hub=not args.offline)
    entry = store.entry(args.name)
    print(f"{args.name}: ready at {path} (source: {entry.manifest['source']}, {store.size(entry) / 1e6:.0f} MB)")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = ModelStore(args.cache_dir)
    print(f"cache: {store.root}")
    for entry in store.entries():
        status = "not pulled"
        if entry.pulled:
            status = f"pulled ({entry.manifest['source']}, {store.size(entry) / 1e6:.0f} MB)"
        print(f"{entry.model.name:24} {status:28} {entry.model.description}")
    return 0
