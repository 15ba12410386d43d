"""What the machine computes natively."""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """Whether bfloat16 matmuls run natively: on a GPU, or on a CPU with AVX512-BF16 or AMX (elsewhere
    they are emulated, many times slower than float32)."""
    if torch.cuda.is_available():
        return True
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def default_device() -> str:
    """Where a model runs when no device is given: the GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"
