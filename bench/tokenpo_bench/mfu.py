"""Model FLOP utilisation of our DPO step against a bf16 matmul peak measured on the same CPU.

FLOPs of one training step (the usual transformer estimate, Kaplan et al. 2020):

    policy forward + backward   6 · N · T
    live reference forward      2 · N · T   (0 when the reference log-probs are precomputed)

N counts every parameter once, the embedding matrix included: SmolLM2 ties its input embedding to
the LM head, so that matrix is counted as the LM head's matmul (the lookup itself is free). T is
the tokens of the step's rows, the prompt counted in both the chosen and the rejected row. The
attention-score term (≈ 12 · layers · d_model · T · seq/2 for forward + backward, about 3 % of
6 · N · T at 256 tokens for SmolLM2) is left out, so MFU is slightly understated. Our engine also
skips the LM head on prompt positions, which the formula counts: the estimate is what the step
would cost done naively, the usual convention for MFU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

MATMUL_SIZES = (1024, 2048)


def step_flops(parameters: int, tokens: int, live_reference: bool) -> float:
    """6·N·T for the policy's forward and backward, plus 2·N·T when the reference runs live."""
    return (6 + (2 if live_reference else 0)) * parameters * tokens


def count_parameters(model_path: str | Path) -> int:
    """Parameters of a model folder, from its safetensors headers (tied weights are stored once)."""
    files = sorted(Path(model_path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_path}: no *.safetensors files")
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total


def matmul_peak(dtype: str = "bfloat16", sizes: tuple[int, ...] = MATMUL_SIZES, repeats: int = 5) -> dict[str, Any]:
    """Best FLOP/s of ``torch.matmul`` on square matrices over sizes and repeats (all torch threads)."""
    import torch

    kind = getattr(torch, dtype)
    best: dict[str, Any] = {"flops_per_s": 0.0}
    generator = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=generator).to(kind)
        b = torch.randn(n, n, generator=generator).to(kind)
        torch.matmul(a, b)  # warm-up: kernel choice, page faults
        for _ in range(repeats):
            started = time.perf_counter()
            torch.matmul(a, b)
            seconds = time.perf_counter() - started
            rate = 2 * n**3 / seconds
            if rate > best["flops_per_s"]:
                best = {"flops_per_s": rate, "size": n, "seconds": seconds}
    return {**best, "dtype": dtype, "threads": torch.get_num_threads(), "repeats": repeats, "sizes": list(sizes)}


def utilisation(parameters: int, tokens: int, live_reference: bool, step_seconds: float, peak: float) -> float:
    """Achieved FLOP/s of one step as a fraction of ``peak``."""
    return step_flops(parameters, tokens, live_reference) / step_seconds / peak
