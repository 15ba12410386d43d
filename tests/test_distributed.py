"""Two processes (accelerate launch, gloo, CPU) equal one process with the same global batch.

Covers the cached reference (gathered across processes), the live reference, the mask head's
gradient all-reduce and metrics reduced over processes. Gradient accumulation equals a larger
micro-batch, in one process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from trainer_helpers import examples, metrics, weights, write_jsonl

from tokenpo.trainers import DPOConfig, SparsePOConfig, TIDPOConfig, TrainConfig, TrainingConfig, train

METHODS = {
    "dpo": DPOConfig(beta=0.5),
    # Dropout off: each process draws its own dropout masks, one process draws them all.
    "sparsepo": SparsePOConfig(beta=0.5, heads="independent", mask_dropout=0.0),
    # Attribution through the wrapped policy, and anchors in a second forward before one backward.
    # Near-greedy sampling: each process samples its own anchors, so only a sampler that ignores
    # the random stream gives both runs the same ones.
    "tidpo": TIDPOConfig(
        beta=0.5, importance_source="policy", anchor_every=2, anchor_max_new_tokens=4, anchor_temperature=1e-4
    ),
}


def training(per_device: int, accumulation: int = 1) -> TrainingConfig:
    return TrainingConfig(
        learning_rate=3e-3,
        per_device_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        max_steps=3,
        seed=5,
        token_scores_examples=0,
    )


_LAUNCHED = """
from tokenpo.trainers import TrainConfig, TrainingConfig, DPOConfig, SparsePOConfig, TIDPOConfig, train
from tokenpo.trainers.data import load_preferences

examples = load_preferences({data!r}).examples
from accelerate import Accelerator

state = Accelerator().state
assert (state.num_processes, state.backend) == (2, "gloo"), (state.num_processes, state.backend)
for name, method in {methods!r}.items():
    settings = TrainingConfig(learning_rate=3e-3, per_device_batch_size=2, max_steps=3, seed=5,
                              token_scores_examples=0)
    config = TrainConfig(method, settings)
    train(config, {model!r}, examples, {root!r} + "/" + name)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_same_run(run, other, tolerance: float) -> None:
    ours, theirs = metrics(run), metrics(other)
    assert len(ours) == len(theirs) == 3
    for row, expected in zip(ours, theirs, strict=True):
        assert row.keys() == expected.keys()
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, abs=tolerance), (row["step"], key)
    final, reference = weights(run / "final"), weights(other / "final")
    for key, value in reference.items():
        assert torch.allclose(final[key], value, rtol=0, atol=tolerance), key


@pytest.mark.slow  # two fresh processes importing torch + transformers: ~20 s on 2 cores
def test_two_processes_equal_one_process_with_the_same_global_batch(tiny_model_dirs, tmp_path):
    model, data = tiny_model_dirs["llama"], examples(8)
    script = _LAUNCHED.format(
        data=str(write_jsonl(tmp_path / "data.jsonl", data)),
        methods=METHODS,
        model=model,
        root=str(tmp_path / "two"),
    )
    (tmp_path / "launched.py").write_text(textwrap.dedent(script))
    # accelerate's own CPU launcher needs MPI; its torchrun launcher (--multi_gpu) with
    # ACCELERATE_USE_CPU=1 starts two CPU processes that join a gloo process group.
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(tmp_path / "launched.py"),
    ]
    done = subprocess.run(
        launch,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, method in METHODS.items():
        single = train(TrainConfig(method, training(per_device=4)), model, data, tmp_path / "one" / name)
        _assert_same_run(tmp_path / "two" / name, single.run_dir, 1e-5)


def test_gradient_accumulation_equals_a_larger_micro_batch(tiny_model_dirs, tmp_path):
    model, data = tiny_model_dirs["llama"], examples(8)
    method = METHODS["sparsepo"]
    big = train(TrainConfig(method, training(per_device=4)), model, data, tmp_path / "big")
    small = train(
        TrainConfig(method, training(per_device=2, accumulation=2)),
        model,
        data,
        tmp_path / "small",
    )
    _assert_same_run(small.run_dir, big.run_dir, 1e-5)
