"""Our DPO and IPO equal TRL's DPOTrainer (the test-only oracle) on the same tiny models and batch.

The policy and the reference are two different random tiny Llamas, so rewards are far from zero.
TRL tokenises and collates its own way (prompt + completion jointly, EOS appended as text); the
test first checks both sides see the same token ids, then compares loss, rewards and log-probs.

TRL's DPOConfig defaults to bf16 autocast (rewards then differ by ~1e-4); it is switched off so
both sides compute in the models' dtype. TRL patches the models it is given (its fused LM head),
so it gets copies.
"""

from __future__ import annotations

import copy

import pytest
import torch
from trainer_helpers import examples

pytest.importorskip("trl")

BETA = 0.3


def _trl_metrics(policy, reference, tokenizer, records, loss_type, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    args = TRLConfig(
        output_dir=str(tmp_path / "trl"),
        beta=BETA,
        loss_type=[loss_type],
        report_to=[],
        per_device_train_batch_size=len(records),
        max_length=None,
        use_cpu=True,
        bf16=False,
        disable_dropout=True,
    )
    trainer = DPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
    )
    rows = [trainer.train_dataset[i] for i in range(len(records))]
    batch = trainer.data_collator(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    mode = "train" if trainer.model.training else "eval"
    logged = {key: values[-1] for key, values in trainer._metrics[mode].items()}
    return float(loss), logged, rows


@pytest.mark.parametrize(
    ("loss_type", "dtype"), [("sigmoid", torch.float32), ("ipo", torch.float32), ("sigmoid", torch.float64)]
)
def test_dpo_loss_and_rewards_equal_trl(tmp_path, loss_type, dtype):
    from accelerate import Accelerator

    from tokenpo.harness.models.tiny import build_tiny_model
    from tokenpo.trainers.config import DPOConfig, TrainConfig, TrainingConfig
    from tokenpo.trainers.data import TruncationPolicy, tokenize_examples
    from tokenpo.trainers.engine import PAIR_METRICS, Engine
    from tokenpo.trainers.methods import build_method

    policy, tokenizer = build_tiny_model("llama", seed=1)
    reference, _ = build_tiny_model("llama", seed=2)
    policy, reference = policy.to(dtype), reference.to(dtype)
    data = examples(4)
    records = [{"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected} for e in data]
    trl_loss, trl, trl_rows = _trl_metrics(policy, reference, tokenizer, records, loss_type, tmp_path)

    pairs = tokenize_examples(data, tokenizer, TruncationPolicy(max_length=512, max_prompt_length=256))
    for pair, row in zip(pairs, trl_rows, strict=True):  # both sides train on the same token ids
        assert (pair.prompt_ids, pair.chosen_ids, pair.rejected_ids) == (
            row["prompt_ids"],
            row["chosen_ids"],
            row["rejected_ids"],
        )

    config = TrainConfig(DPOConfig(beta=BETA, loss=loss_type), TrainingConfig(per_device_batch_size=4))
    method = build_method(config.method, policy.config)
    engine = Engine(
        config,
        method,
        Accelerator(cpu=True),
        policy.eval(),
        reference.eval(),
        pairs,
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
    )
    engine.precompute()
    with torch.no_grad():
        out, tensors = engine.micro_step([0, 1, 2, 3])
    ours = engine.pair_stats(out, tensors)
    assert float(out.result.losses.mean()) == pytest.approx(trl_loss, abs=1e-5)
    for key in PAIR_METRICS[1:]:
        value = float(ours[key][0] / ours[key][1])
        assert value == pytest.approx(trl[key], abs=1e-5), key
    assert abs(trl["rewards/margins"]) > 0.01  # a real comparison, not 0 == 0
