"""Token-level preference optimisation: train (``tokenpo.trainers``), evaluate (``tokenpo.evals``),
compare (``tokenpo.leaderboards``); ``tokenpo.harness`` is the command line and the pipeline that
wires them, ``tokenpo.core`` what they share."""
