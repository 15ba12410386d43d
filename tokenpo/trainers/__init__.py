"""Preference-optimisation trainers: DPO, TDPO, SparsePO and TI-DPO for any causal LM.

The Python API is small::

    from tokenpo.trainers import TrainConfig, train
    result = train(TrainConfig(), model_path, examples, "runs/dpo")   # -> TrainResult

``tokenpo.trainers.losses`` holds the methods' losses as pure functions over tensors.
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
from tokenpo.trainers.run import train
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
    "train",
]
