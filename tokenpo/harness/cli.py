"""The ``harness`` command: one entry point, one sub-command per job.

Bad input (a malformed record, an unknown key, a missing file) prints ``error: …`` as one line on
stderr and exits 2; a traceback means a bug in the harness.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tokenpo.core import cores, progress
from tokenpo.core.errors import EXIT_CODE, UserError
from tokenpo.harness import __version__
from tokenpo.harness.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Train causal LMs with DPO, TDPO, SparsePO and TI-DPO; evaluate; compare against DPO.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Our own progress bars say what is happening; transformers' weight-loading bars only add noise
    (and would precede the one-line error on stderr)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _display(args: argparse.Namespace) -> progress.Display:
    """What draws the progress libraries report: nothing with ``--no-progress``, else the command's
    own display (``harness run``: one line for the whole pipeline) or tqdm bars."""
    if getattr(args, "no_progress", False):
        return progress.Silent(progress.own_stderr())  # the terminal, while a run sends stderr to its log
    return getattr(args, "display", progress.Bars)()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cores.size_threads()  # before torch loads: its pools would size themselves to the machine
    _quiet_libraries()
    try:
        with progress.shown_by(_display(args)):
            return int(args.run(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CODE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
