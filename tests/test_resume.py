"""N steps straight equal k steps + SIGKILL + resume to N: same final weights, same metrics.

The killed run is a real process that SIGKILLs itself right after logging step 3 (its last
checkpoint is step 2), so the resumed run must restore weights, optimiser, scheduler, RNG
(mask-head dropout, anchor sampling), anchors and the data position, and redo step 3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from trainer_helpers import examples, metrics, weights, write_jsonl

from tokenpo.trainers import DPOConfig, LoraSettings, SparsePOConfig, TIDPOConfig, TrainConfig, TrainingConfig, train
from tokenpo.trainers.masks import HEAD_FILE

KILL_AFTER_STEP = 3

# name → (method, LoRA settings or None, other training settings)
RUNS = {
    "tidpo-anchors": (TIDPOConfig(beta=0.5, anchor_every=2, anchor_max_new_tokens=6), None, {}),
    "dpo-lora": (DPOConfig(beta=0.5), LoraSettings(r=4, alpha=8, dropout=0.0), {}),
    # Dropout on (disable_dropout false), so the mask head's dropout draws from the restored RNG.
    "sparsepo-learned": (
        SparsePOConfig(beta=0.5, heads="independent", mask_dropout=0.3, head_init="average"),
        None,
        {"disable_dropout": False},
    ),
}
# The TI-DPO run restores sampling RNG, anchors, optimiser and data position; the LoRA run resumes
# adapters; the SparsePO run adds the mask head, its optimiser group and dropout RNG (slow tests).
SLOW = {"sparsepo-learned"}


def training(lora: LoraSettings | None, extra: dict) -> TrainingConfig:
    return TrainingConfig(
        learning_rate=3e-3, per_device_batch_size=2, max_steps=6, save_every=2, seed=3, lora=lora, **extra
    )


_KILLED_RUN = """
import os, signal, sys
import tokenpo.trainers.loop
from tokenpo.trainers import TrainConfig, TrainingConfig, LoraSettings, {method_class}
from tokenpo.trainers.data import load_preferences

original = tokenpo.trainers.loop.Trainer._log
def log_then_die(self, row):
    original(self, row)
    if row["step"] == {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)
tokenpo.trainers.loop.Trainer._log = log_then_die
config = TrainConfig({method!r}, TrainingConfig(learning_rate=3e-3, per_device_batch_size=2, max_steps=6,
                                                save_every=2, seed=3, lora={lora!r}, **{extra!r}))
tokenpo.trainers.train(config, {model!r}, load_preferences({data!r}).examples, {run!r})
"""


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in sorted(RUNS)]
)
def test_resume_after_sigkill_equals_a_straight_run(tiny_model_dirs, tmp_path, name):
    method, lora, extra = RUNS[name]
    model = tiny_model_dirs["llama"]
    data = examples(8)
    straight = train(TrainConfig(method, training(lora, extra)), model, data, tmp_path / "straight")

    run = tmp_path / "resumed"
    script = _KILLED_RUN.format(
        method_class=type(method).__name__,
        method=method,
        lora=lora,
        extra=extra,
        kill_after=KILL_AFTER_STEP,
        model=model,
        data=str(write_jsonl(tmp_path / "data.jsonl", data)),
        run=str(run),
    )
    # One thread, as in this process (conftest): the same float summation order on both sides.
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run / "DONE").exists() and not (run / "final").exists()
    assert [row["step"] for row in metrics(run)] == [1, 2, 3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2"]

    resumed = train(TrainConfig(method, training(lora, extra)), model, data, run)
    assert resumed.resumed_from == 2
    assert metrics(run) == metrics(straight.run_dir)  # every number of every step, exactly
    ours, theirs = weights(run / "final"), weights(straight.run_dir / "final")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    if isinstance(method, SparsePOConfig):
        from safetensors.torch import load_file

        head, other = (
            load_file(str(run / "final" / HEAD_FILE)),
            load_file(str(straight.run_dir / "final" / HEAD_FILE)),
        )
        assert all(torch.equal(head[key], other[key]) for key in head)
    tokens = [json.loads(line) for line in (run / "token_scores.jsonl").read_text().splitlines()]
    assert tokens == [json.loads(line) for line in (straight.run_dir / "token_scores.jsonl").read_text().splitlines()]
