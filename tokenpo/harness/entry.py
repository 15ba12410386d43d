"""The ``harness`` executable (and ``python -m tokenpo``): compute threads sized before torch loads.

OpenMP, torch's intra-op pool, reads its settings (``OMP_NUM_THREADS``, ``GOMP_SPINCOUNT``) once, when
torch is imported, and the command modules import torch; so :func:`tokenpo.core.cores.size_threads`
runs here, before :mod:`tokenpo.harness.cli` is imported.
"""

from __future__ import annotations

import sys


def main() -> int:
    from tokenpo.core.cores import size_threads

    size_threads()
    try:
        from tokenpo.harness.cli import main as run_command
    except ModuleNotFoundError as error:
        if (error.name or "").startswith("tokenpo"):
            raise
        # `python -m tokenpo` in a clone, with a Python that has not installed the package's dependencies.
        sys.exit(
            f"error: {error.name} is not installed in {sys.executable}: run the harness of the quickstart's "
            "environment (.tox/quickstart/bin/harness), or install the package (docs/quickstart.md#set-up)"
        )
    return run_command()
