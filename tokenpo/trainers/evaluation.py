"""Held-out preference pairs evaluated under the policy: TRL's evaluation metrics, during training or of a
saved checkpoint.

:func:`tokenpo.trainers.evaluate_checkpoint` computes the same metrics for a saved checkpoint, apart from
any training. The evaluation is the training step's forward and loss without the update: every held-out pair once, in
batches of ``per_device_batch_size`` split across processes (pair ``i`` on process ``i mod P``), the
models in evaluation mode, no gradients (TI-DPO's policy attribution differentiates the logits with
respect to the input embeddings, so it alone keeps autograd on, and no parameter's gradient is written).
The metrics are means over pairs (sums and counts reduced over processes), so they do not depend on
the batch size or the number of processes, under TRL's names with ``eval_`` in front: ``eval_loss``,
``eval_rewards/chosen``, ``eval_rewards/rejected``, ``eval_rewards/margins``, ``eval_rewards/accuracies``,
``eval_logps/chosen``, ``eval_logps/rejected``, then the method's own (``eval_mask/…``, …).

TI-DPO's triplet term needs anchors sampled from the policy for a pair during the training step; held-out
pairs have none, so their loss is its importance-weighted DPO and KL terms alone (as a training pair's
loss on a step without an anchor).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tokenpo.trainers.engine import Engine, add_stats, reduce_stats
from tokenpo.trainers.errors import TrainingError

PREFIX = "eval_"


def evaluate_pairs(engine: Engine, modules: Sequence[nn.Module], batch_size: int) -> dict[str, float]:
    """Every pair of ``engine`` once under its policy (``modules``: the policy and the mask heads, put in
    evaluation mode for the pass and back in training mode after): the ``eval_`` metrics row."""
    accelerator = engine.accelerator
    processes, index = accelerator.num_processes, accelerator.process_index
    if len(engine.pairs) < processes:
        raise TrainingError(f"held-out pairs: {len(engine.pairs)}, fewer than the {processes} training processes")
    mine = [i for i in range(len(engine.pairs)) if i % processes == index]
    stats: dict = {}
    for module in modules:
        module.eval()
    try:
        with torch.set_grad_enabled(engine.needs.attribution == "policy"):
            for start in range(0, len(mine), batch_size):
                out, tensors = engine.micro_step(mine[start : start + batch_size])
                add_stats(stats, engine.pair_stats(out, tensors))
    finally:
        for module in modules:
            module.train()
    return {PREFIX + key: value for key, value in reduce_stats(stats, accelerator).items()}
