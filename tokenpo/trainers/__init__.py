"""Preference-optimisation trainers: DPO, TDPO, SparsePO and TI-DPO for any causal LM.

The Python API is small::

    from tokenpo.trainers import TrainConfig, train
    result = train(TrainConfig(), model_path, examples, "runs/dpo")   # -> TrainResult

``tokenpo.trainers.losses`` holds the methods' losses as pure functions over tensors. ``train()``
writes the run folder but no model card: the harness writes those (``harness train``, ``harness run``).

Modules by job: ``run`` (``train()``, the entry) wires ``runfolder`` (the run folder, fingerprint
and resume policy) and ``loop`` (the Trainer: build, step, log, checkpoint); one step calls
``engine`` (a micro-batch's forwards, the reference cache, anchors), which runs what ``methods``
declare they need and calls their ``losses`` (on the autograd ``kernels``). Around them: ``forward``
(loading models, forwards on the completion grid), ``activations``/``hookpoints`` (MaPO masks),
``masks`` (the learned mask head), ``anchors`` (TI-DPO's anchors), ``health``, ``config``, ``data``;
``evaluation`` (held-out pairs, every ``training.eval_steps``; ``evaluate_checkpoint`` for a saved one).
"""

from tokenpo.trainers.config import (
    DPOConfig,
    LoraSettings,
    SparsePOConfig,
    TDPOConfig,
    TIDPOConfig,
    TrainConfig,
    TrainingConfig,
)
from tokenpo.trainers.errors import TrainingError
from tokenpo.trainers.run import evaluate_checkpoint, train
from tokenpo.trainers.runfolder import TrainResult

__all__ = [
    "DPOConfig",
    "LoraSettings",
    "SparsePOConfig",
    "TDPOConfig",
    "TIDPOConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingConfig",
    "TrainingError",
    "evaluate_checkpoint",
    "train",
]
